package h1

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchJSON is a typical upstream answer (~725 bytes).
var benchJSON = func() []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":42,"name":"Ada Lovelace","email":"ada@example.com","roles":["admin","editor"],"address":{"street":"12 Analytical Engine Way","city":"London","zip":"NW1 6XE","country":"GB"},"preferences":{"theme":"dark","language":"en-GB","notifications":{"email":true,"sms":false,"push":true}},"orders":[`)
	for i := range 5 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"id":` + strconv.Itoa(1000+i) + `,"total":"129.90","currency":"GBP","status":"shipped","items":3}`)
	}
	b.WriteString(`],"created_at":"2015-12-10T10:00:00Z","updated_at":"2024-03-01T08:30:00Z","active":true}`)
	return b.Bytes()
}()

// upstreams the benchmarks call: a net/http server (what the brief
// measures, its CPU included in ns/op), and a canned raw server whose own
// cost is tiny, so the difference between the clients shows more clearly.
func benchUpstreams(b *testing.B) map[string]string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{strconv.Itoa(len(benchJSON))}
		w.Write(benchJSON)
	}))
	b.Cleanup(srv.Close)

	canned := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: " +
		strconv.Itoa(len(benchJSON)) + "\r\n\r\n" + string(benchJSON))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// Requests without bodies: read to the empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := c.Write(canned); err != nil {
						return
					}
				}
			}()
		}
	}()
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return map[string]string{"httptest": srv.Listener.Addr().String(), "rawserver": ln.Addr().String()}
}

// BenchmarkDo: h1.Client, parallel GETs with a per-call deadline (as
// Manifold's calls have), body read to EOF into a reused buffer.
func BenchmarkDo(b *testing.B) {
	for _, name := range []string{"httptest", "rawserver"} {
		b.Run(name, func(b *testing.B) {
			addr := benchUpstreams(b)[name]
			c := New(Options{Addr: addr, MaxIdleConns: 64})
			defer c.CloseIdleConnections()
			req := &Request{Method: "GET", Host: "users.internal", RequestURI: "/users/42",
				Header: http.Header{"User-Agent": {"manifold"}, "X-Request-Id": {"0123456789abcdef"}}}
			b.ReportAllocs()
			b.ResetTimer()
			u0, s0 := cpuTime()
			defer func() { reportCPU(b, u0, s0) }()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 2048)
				for pb.Next() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					resp, err := c.Do(ctx, req)
					if err != nil {
						b.Error(err)
						cancel()
						return
					}
					n := readAll(resp.Body, buf)
					resp.Body.Close()
					cancel()
					if n != len(benchJSON) {
						b.Errorf("read %d bytes", n)
						return
					}
				}
			})
		})
	}
}

// BenchmarkStdTransport: the same calls through a tuned http.Transport
// (the way fetch uses it today).
func BenchmarkStdTransport(b *testing.B) {
	for _, name := range []string{"httptest", "rawserver"} {
		b.Run(name, func(b *testing.B) {
			addr := benchUpstreams(b)[name]
			tr := &http.Transport{
				DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
				MaxIdleConnsPerHost: 64,
				IdleConnTimeout:     90 * time.Second,
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			}}
			url := "http://" + addr + "/users/42"
			b.ReportAllocs()
			b.ResetTimer()
			u0, s0 := cpuTime()
			defer func() { reportCPU(b, u0, s0) }()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 2048)
				for pb.Next() {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
					req.Host = "users.internal"
					req.Header["User-Agent"] = []string{"manifold"}
					req.Header["X-Request-Id"] = []string{"0123456789abcdef"}
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						cancel()
						return
					}
					n := readAll(resp.Body, buf)
					resp.Body.Close()
					cancel()
					if n != len(benchJSON) {
						b.Errorf("read %d bytes", n)
						return
					}
				}
			})
		})
	}
}

// reportCPU adds the CPU the whole process (client, server and kernel
// work on their behalf) spent per call since start: the figure that
// matters on a busy gateway, where ns/op only measures wall time.
func reportCPU(b *testing.B, startUser, startSys time.Duration) {
	user, sys := cpuTime()
	if user == 0 {
		return
	}
	b.ReportMetric(float64(user-startUser)/float64(b.N), "user-ns/op")
	b.ReportMetric(float64(user-startUser+sys-startSys)/float64(b.N), "cpu-ns/op")
}

func readAll(r io.Reader, buf []byte) int {
	n := 0
	for {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil || n == len(buf) {
			return n
		}
	}
}
