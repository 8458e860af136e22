// Command stub is the benchmark's upstream: it serves three ~694-byte JSON
// objects at /a, /b and /c (distinct top-level keys, 6 nested items each),
// precomputed so that it costs as little CPU as a server can. Every path
// honours ?delay=DURATION.
//
// The delay is slept with nanosleep(2) on the handler's thread, not with a
// Go timer: Go's netpoller waits in whole milliseconds, so a 20ms timer
// fires anywhere up to ~1ms late, which would add up to a millisecond of
// noise to every latency the benchmark attributes to the gateway. (A stub
// may block a thread per request; the delay is not cancellable.)
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"strings"
	"syscall"
	"time"
)

// body builds one object whose top-level keys all start with prefix.
func body(prefix string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, `{"%s_id":"%s-1029384756","%s_name":"Benchmark object %s","%s_updated":"2026-11-27T10:00:00Z","%s_items":[`,
		prefix, prefix, prefix, strings.ToUpper(prefix), prefix, prefix)
	for i := range 6 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"Item %s%d","sku":"SKU-%s-%04d","qty":%d,"price":%d.%02d,"tags":["x","y"]}`, i+1, prefix, i+1, prefix, 1000+i*7, i%3+1, 10+i*3, i*11%100)
	}
	fmt.Fprintf(&b, `],"%s_total":9007199254740993,"%s_ratio":0.1000000000000000055511151231257827,"%s_active":true}`, prefix, prefix, prefix)
	return []byte(b.String())
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9100", "listen address")
	flag.Parse()
	bodies := map[string][]byte{"/a": body("a"), "/b": body("b"), "/c": body("c")}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if d := r.URL.Query().Get("delay"); d != "" {
			dur, err := time.ParseDuration(d)
			if err != nil {
				http.Error(w, "bad delay", http.StatusBadRequest)
				return
			}
			preciseSleep(dur)
		}
		hdr := w.Header()
		hdr["Content-Type"] = []string{"application/json"}
		_, _ = w.Write(b)
	})
	srv := &http.Server{Addr: *addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
	log.Printf("stub listening on %s (bodies: %d, %d, %d bytes)", *addr, len(bodies["/a"]), len(bodies["/b"]), len(bodies["/c"]))
	log.Fatal(srv.ListenAndServe())
}

// preciseSleep blocks the calling thread for d with nanosleep(2), resuming
// after interruptions until d has passed.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		err := syscall.Nanosleep(&ts, &rem)
		if err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
