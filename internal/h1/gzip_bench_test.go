package h1

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchJSON8K is an ~8 KB upstream answer, a list of records.
var benchJSON8K = func() []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := 0; b.Len() < 8<<10; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		n := strconv.Itoa(i)
		b.WriteString(`{"id":` + n + `,"sku":"SKU-` + n + `","name":"Item number ` + n + `","price":"` + n + `.99","currency":"EUR","in_stock":true,"tags":["sale","new"]}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}()

// cannedServer answers every request (without a body) on a loopback
// listener with resp, at next to no cost of its own.
func cannedServer(b *testing.B, resp []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) == 2 {
							break
						}
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			})
		}
	})
	b.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// BenchmarkGzipBody: an ~8 KB JSON answer as identity or gzip (what an
// upstream sends when asked with Accept-Encoding: gzip), decoded by the
// client. wire-B/op is the body on the wire; cpu-ns/op the whole
// process's CPU per call (the canned server costs next to nothing).
func BenchmarkGzipBody(b *testing.B) {
	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(benchJSON8K)
	zw.Close()
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			payload, head := benchJSON8K, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
			if enc == "gzip" {
				payload, head = zb.Bytes(), head+"Content-Encoding: gzip\r\n"
			}
			resp := append([]byte(head+"Content-Length: "+strconv.Itoa(len(payload))+"\r\n\r\n"), payload...)
			c := New(Options{Addr: cannedServer(b, resp), MaxIdleConns: 64})
			defer c.CloseIdleConnections()
			req := &Request{Method: "GET", Host: "items.internal", RequestURI: "/items",
				Header: http.Header{"User-Agent": {"manifold"}, "Accept-Encoding": {"gzip"}}}
			b.ReportAllocs()
			b.ResetTimer()
			u0, s0 := cpuTime()
			defer func() {
				reportCPU(b, u0, s0)
				b.ReportMetric(float64(len(payload)), "wire-B/op")
			}()
			b.RunParallel(func(pb *testing.PB) {
				buf := make([]byte, 16<<10)
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
					if n != len(benchJSON8K) {
						b.Errorf("read %d bytes", n)
						return
					}
				}
			})
		})
	}
}
