// Command stub is the benchmark's upstream: it serves three ~694-byte JSON
// objects at /a, /b and /c (distinct top-level keys, 6 nested items each),
// precomputed so that it costs as little CPU as a server can. Every path
// honours ?delay=DURATION except /sized.
//
// For the growth scenarios (S6, S7) it also serves /w/0 … /w/29, thirty
// more objects of the same shape (~700 bytes) whose keys start with w00_ …
// w29_, so that a 30-backend merge has 30 distinct key sets; and
// /sized?kb=N&p=X (N 1, 10, 100 or 1000; X a, b or c), an object of about
// N KiB whose top-level keys start with X (its items array grows with N).
// All are built once at start-up, like /a, /b and /c.
//
// It can listen on several addresses at once (-addr a,b,c), so that one
// process plays the instances of an upstream pool; with -slow ADDR, every
// -slow-every-th call to /a, /b or /c on that listener answers -slow-by
// later (deterministic, so a run's slow share is exact). GET /__count on
// any listener answers the calls each listener has served so far, as a
// JSON object keyed by listen address: the benchmark reads it before and
// after a run to count the upstream calls the gateway made.
//
// A delay under threadSleepMax is slept with nanosleep(2) on the handler's
// thread, not with a Go timer: Go's netpoller waits in whole milliseconds,
// so a 20ms timer fires anywhere up to ~1ms late, which would add up to a
// millisecond of noise to every latency the benchmark attributes to the
// gateway. (A stub may block a thread per request; the delay is not
// cancellable.) Longer delays use a Go timer: S8 holds up to 30,000 calls
// of 200 ms at once, and a thread each would pass Go's limit of 10,000
// threads (the process dies) long before that, while ~1ms is under 1 % of
// such a delay.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
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

// sizedKBs are the body sizes /sized serves, in KiB.
var sizedKBs = []int{1, 10, 100, 1000}

// sizedBody builds one object of at least kb KiB (and less than 100 bytes
// over) whose top-level keys all start with prefix: body's head, then as
// many items as fit.
func sizedBody(prefix string, kb int) []byte {
	want := kb * 1024
	var b strings.Builder
	fmt.Fprintf(&b, `{"%s_id":"%s-1029384756","%s_size_kb":%d,"%s_items":[`, prefix, prefix, prefix, kb, prefix)
	tail := fmt.Sprintf(`],"%s_total":9007199254740993,"%s_active":true}`, prefix, prefix)
	for i := 0; ; i++ {
		item := fmt.Sprintf(`{"id":%d,"name":"Item %s%d","sku":"SKU-%s-%06d","qty":%d,"price":%d.%02d,"tags":["x","y"]}`, i+1, prefix, i+1, prefix, i, i%3+1, 10+i%90, i*11%100)
		if i > 0 {
			item = "," + item
		}
		if b.Len()+len(item)+len(tail) > want && i > 0 {
			break
		}
		b.WriteString(item)
	}
	pad := want - b.Len() - len(tail)
	if pad > 0 { // fill to the exact size with one padding key
		b.WriteString(tail[:len(tail)-1])
		fmt.Fprintf(&b, `,"%s_pad":"%s"}`, prefix, strings.Repeat("p", max(0, pad-len(prefix)-10)))
	} else {
		b.WriteString(tail)
	}
	return []byte(b.String())
}

func main() {
	addrs := flag.String("addr", "127.0.0.1:9100", "listen address, or several separated by commas (one server each)")
	slow := flag.String("slow", "", "one of -addr whose every -slow-every-th call answers -slow-by later")
	slowEvery := flag.Int("slow-every", 10, "with -slow: which calls are late (every Nth on that listener)")
	slowBy := flag.Duration("slow-by", 50*time.Millisecond, "with -slow: how much later they answer")
	flag.Parse()
	list := strings.Split(*addrs, ",")
	if *slow != "" && !slices.Contains(list, *slow) {
		log.Fatalf("-slow %s is not one of -addr %s", *slow, *addrs)
	}
	if *slowEvery < 1 {
		log.Fatalf("-slow-every must be at least 1, got %d", *slowEvery)
	}
	bodies := map[string][]byte{"/a": body("a"), "/b": body("b"), "/c": body("c")}
	for i := range 30 {
		bodies[fmt.Sprintf("/w/%d", i)] = body(fmt.Sprintf("w%02d", i))
	}
	sized := map[string][]byte{}
	for _, kb := range sizedKBs {
		for _, p := range []string{"a", "b", "c"} {
			sized[fmt.Sprintf("kb=%d&p=%s", kb, p)] = sizedBody(p, kb)
		}
	}
	counts := make([]atomic.Int64, len(list))
	countsJSON := func() []byte {
		m := make(map[string]int64, len(list))
		for i, a := range list {
			m[a] = counts[i].Load()
		}
		b, _ := json.Marshal(m)
		return b
	}
	errs := make(chan error, len(list))
	for i, addr := range list {
		late := time.Duration(0)
		if addr == *slow {
			late = *slowBy
		}
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/__count" {
				w.Header()["Content-Type"] = []string{"application/json"}
				_, _ = w.Write(countsJSON())
				return
			}
			b, ok := bodies[r.URL.Path]
			if r.URL.Path == "/sized" {
				b, ok = sized[r.URL.RawQuery]
			}
			if !ok {
				http.NotFound(w, r)
				return
			}
			n := counts[i].Add(1)
			var dur time.Duration
			if d := r.URL.Query().Get("delay"); d != "" && r.URL.Path != "/sized" {
				var err error
				if dur, err = time.ParseDuration(d); err != nil {
					http.Error(w, "bad delay", http.StatusBadRequest)
					return
				}
			}
			if late > 0 && n%int64(*slowEvery) == 0 {
				dur += late
			}
			if dur >= threadSleepMax {
				time.Sleep(dur)
			} else if dur > 0 {
				preciseSleep(dur)
			}
			hdr := w.Header()
			hdr["Content-Type"] = []string{"application/json"}
			_, _ = w.Write(b)
		})
		srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 5 * time.Second}
		go func() { errs <- srv.ListenAndServe() }()
	}
	log.Printf("stub listening on %s (bodies: %d, %d, %d bytes, /w/0 %d, /sized?kb=1000&p=a %d; slow: %q, every %d calls by %s)",
		*addrs, len(bodies["/a"]), len(bodies["/b"]), len(bodies["/c"]), len(bodies["/w/0"]), len(sized["kb=1000&p=a"]), *slow, *slowEvery, *slowBy)
	log.Fatal(<-errs)
}

// threadSleepMax is the shortest delay slept on a Go timer instead of a
// blocked thread (see the package comment): above the 20 ms of S3 and the
// 50 ms of the pools' slow instance, below the 200 ms of S8.
const threadSleepMax = 100 * time.Millisecond

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
