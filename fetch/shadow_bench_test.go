package fetch_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/manifold-gw/manifold/config"
	"github.com/manifold-gw/manifold/fetch"
)

const benchShadowUpstream = `, v2: {url: "{{u}}"}`

const benchShadowBackend = `      - {upstream: v2, path: "/v2/{id}", group: a, shadow: true}
`

// benchShadow runs Fetch on an endpoint with one shadow backend besides
// the template's, through a pool of the given size; the request-path cost
// of a shadow backend is its enqueue: preparing the call and copying its
// headers, or nothing at all when the queue is full.
func benchShadow(b *testing.B, template string, workers, queue int, start bool) {
	p := fetch.NewShadowPool(config.Shadow{Workers: workers, Queue: queue}, fetch.ShadowHooks{}, nil)
	if start {
		p.Start()
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		p.Stop(ctx)
	})
	ec, ups := benchCompile(b, fmt.Sprintf(template, benchShadowUpstream, benchShadowBackend))
	ep, err := fetch.NewEndpoint(ec, ups, fetch.WithShadowPool(p))
	if err != nil {
		b.Fatal(err)
	}
	benchFetch(b, ep)
}

// BenchmarkFetchShadow: three backends and one shadow, every copy queued
// (and sent by the pool's workers, whose CPU the benchmark shares).
func BenchmarkFetchShadow(b *testing.B) { benchShadow(b, benchFlat, 8, 1<<16, true) }

// BenchmarkFetchShadowDropped: the queue is full (its pool never started),
// so every copy is dropped at once, unprepared.
func BenchmarkFetchShadowDropped(b *testing.B) { benchShadow(b, benchFlat, 1, 1, false) }

// BenchmarkFetchGraphShadow: a call graph with a shadow backend.
func BenchmarkFetchGraphShadow(b *testing.B) { benchShadow(b, benchGraph, 8, 1<<16, true) }
