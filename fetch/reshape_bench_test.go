package fetch_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// Realistic fixtures: three backends of a user page (profile, orders,
// recommendations), each a ~725-byte object with distinct top-level keys
// and an array of 6 nested items, roughly what a gateway aggregates.

func benchProfile() []byte {
	var items []string
	for i := range 6 {
		items = append(items, fmt.Sprintf(`{"id":"f-%04d","name":"Friend %d","since":"2021-0%d-14","mutual":%d,"avatar":"/a/%d.png"}`, 1000+i, i, i+1, 3*i, i))
	}
	return []byte(`{"id":"u-9007199254740993","name":"Ann Lee","email":"ann.lee@example.com","verified":true,` +
		`"address":{"street":"12 Harbour Road","city":"Oslo","zip":"0150","country":"NO"},` +
		`"created":"2019-03-02T10:11:12Z","friends":[` + strings.Join(items, ",") + `]}`)
}

func benchOrders() []byte {
	var items []string
	for i := range 6 {
		items = append(items, fmt.Sprintf(`{"id":%d,"total":%d.95,"status":"shipped","sku":"SKU-%03d","qty":%d,"placed":"2024-10-%02dT12:00:00Z"}`, 5000+i, 10*i+9, i, i+1, 10+i))
	}
	return []byte(`{"orderCount":6,"currency":"EUR","lifetimeValue":1234.56,"lastOrderAt":"2024-11-02T09:00:00Z",` +
		`"orders":[` + strings.Join(items, ",") + `]}`)
}

func benchRecommendations() []byte {
	var items []string
	for i := range 6 {
		items = append(items, fmt.Sprintf(`{"sku":"SKU-%03d","title":"Item %d","score":0.%d5,"reason":"bought-with","price":%d.50,"image":"/img/%03d.jpg"}`, 100+i, i, 9-i, 20+i, 100+i))
	}
	return []byte(`{"model":"rec-v7","generatedAt":"2024-11-02T09:00:01Z",` +
		`"recommendations":[` + strings.Join(items, ",") + `]}`)
}

func benchParts(grouped bool) []fetch.Part {
	parts := []fetch.Part{
		{Body: benchProfile()},
		{Body: benchOrders()},
		{Body: benchRecommendations()},
	}
	if grouped {
		parts[0].Group, parts[1].Group, parts[2].Group = "profile", "orders", "recommendations"
	}
	return parts
}

// TestReshapeBenchFixtures keeps the benchmark fixtures honest: valid JSON
// of about the advertised size, with distinct top-level keys.
func TestReshapeBenchFixtures(t *testing.T) {
	seen := map[string]bool{}
	for _, p := range benchParts(false) {
		if !json.Valid(p.Body) {
			t.Fatalf("fixture is not valid JSON: %s", p.Body)
		}
		t.Logf("fixture: %d bytes", len(p.Body))
		if n := len(p.Body); n < 700 || n > 760 {
			t.Errorf("fixture is %d bytes, want about 725", n)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(p.Body, &m); err != nil {
			t.Fatal(err)
		}
		for k := range m {
			if seen[k] {
				t.Errorf("key %q repeats across fixtures", k)
			}
			seen[k] = true
		}
	}
}

func benchmarkMerge(b *testing.B, parts []fetch.Part) {
	size := 0
	for _, p := range parts {
		size += len(p.Body)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		buf = fetch.Merge(buf[:0], parts)
	}
	if !json.Valid(buf) {
		b.Fatalf("invalid output: %s", buf)
	}
}

func BenchmarkMerge3(b *testing.B) { benchmarkMerge(b, benchParts(false)) }

func BenchmarkMerge3Groups(b *testing.B) { benchmarkMerge(b, benchParts(true)) }

// BenchmarkMerge3NoReuse is Merge3 for a caller without a buffer to reuse:
// the output buffer is the only allocation.
func BenchmarkMerge3NoReuse(b *testing.B) {
	parts := benchParts(false)
	b.ReportAllocs()
	for b.Loop() {
		if out := fetch.Merge(nil, parts); len(out) == 0 {
			b.Fatal("empty output")
		}
	}
}

func BenchmarkReshapeAllowRename(b *testing.B) {
	plan, err := fetch.NewPlan("", []string{"id", "name", "address"}, nil, map[string]string{"name": "fullName"})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkApply(b, plan, benchProfile())
}

func BenchmarkReshapeIdentity(b *testing.B) {
	plan, err := fetch.NewPlan("", nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	benchmarkApply(b, plan, benchProfile())
}

func benchmarkApply(b *testing.B, plan *fetch.Plan, raw []byte) {
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	var buf []byte
	var err error
	for b.Loop() {
		if buf, err = plan.Apply(buf[:0], raw); err != nil {
			b.Fatal(err)
		}
	}
	if !json.Valid(buf) {
		b.Fatalf("invalid output: %s", buf)
	}
}

// BenchmarkMerge3Exact is BenchmarkMerge3 on the load benchmark's stub
// bodies, which carry exact-text numbers (2^53+1 and a 34-digit decimal):
// a merge that converted numbers while scanning paid for them here.
func BenchmarkMerge3Exact(b *testing.B) {
	var parts []fetch.Part
	for _, p := range []string{"a", "b", "c"} {
		parts = append(parts, fetch.Part{Body: []byte(`{"` + p + `_id":"` + p + `-1029384756","` + p + `_name":"Benchmark object","` + p +
			`_items":[{"id":1,"price":10.00,"tags":["x","y"]},{"id":2,"price":13.11,"tags":["x"]}],"` + p +
			`_total":9007199254740993,"` + p + `_ratio":0.1000000000000000055511151231257827,"` + p + `_active":true}`)})
	}
	benchmarkMerge(b, parts)
}
