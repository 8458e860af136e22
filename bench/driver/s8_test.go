package main

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestS8UpstreamConnsMatchesTheConfig: the fd arithmetic (s8FDNeed) holds
// only while every /agg-200 upstream in bench/manifold.yaml has
// max_connections equal to s8UpstreamConns.
func TestS8UpstreamConnsMatchesTheConfig(t *testing.T) {
	b, err := os.ReadFile("../manifold.yaml")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^  (s8[abc]):\n(?:    .*\n)*?    max_connections: (\d+)\n`)
	found := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[2])
		if n != s8UpstreamConns {
			t.Errorf("bench/manifold.yaml: upstreams.%s.max_connections is %d, the driver's s8UpstreamConns %d", m[1], n, s8UpstreamConns)
		}
		found[m[1]] = true
	}
	for _, u := range []string{"s8a", "s8b", "s8c"} {
		if !found[u] {
			t.Errorf("bench/manifold.yaml: upstreams.%s has no max_connections", u)
		}
	}
}

func TestCheckFDLimit(t *testing.T) {
	tests := []struct {
		limit uint64
		fits  int
	}{
		{20000, 20000 - 1024 - 3*2500}, // 11 476: 10 000 fits
		{65536, 65536 - 1024 - 3*2500},
		{4096, (4096 - 1024) / 4}, // below the cap: four per connection
	}
	for _, tc := range tests {
		var info concurrencyInfo
		checkFDLimit([]int{100}, tc.limit, true, &info)
		if info.FDFitsUpTo != tc.fits {
			t.Errorf("limit %d: fits %d connections, want %d", tc.limit, info.FDFitsUpTo, tc.fits)
		}
		if got := s8FDNeed(info.FDFitsUpTo); got > int(tc.limit) {
			t.Errorf("limit %d: %d connections need %d fds", tc.limit, info.FDFitsUpTo, got)
		}
		if got := s8FDNeed(info.FDFitsUpTo + 1); got <= int(tc.limit) {
			t.Errorf("limit %d: %d connections (one more than fits) need only %d fds", tc.limit, info.FDFitsUpTo+1, got)
		}
	}
	var info concurrencyInfo
	checkFDLimit([]int{1000, 5000, 10000}, 20000, false, &info)
	if info.FDWorstCase != 10000+3*2500+1024 || len(info.FDShortLevels) != 0 {
		t.Errorf("10 000 connections under 20 000 fds: worst case %d, short levels %v", info.FDWorstCase, info.FDShortLevels)
	}
}
