package fetch

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// validBenchSmall is a ~700-byte user profile with nested items, the size
// of a typical backend answer; validBenchLarge is ~100 KB of such items.
func validBenchSmall() []byte {
	var items []string
	for i := range 6 {
		items = append(items, fmt.Sprintf(`{"id":"f-%04d","name":"Friend %d","since":"2021-0%d-14","mutual":%d,"avatar":"/a/%d.png"}`, 1000+i, i, i+1, 3*i, i))
	}
	return []byte(`{"id":"u-9007199254740993","name":"Ann Lee","email":"ann.lee@example.com","verified":true,` +
		`"address":{"street":"12 Harbour Road","city":"Oslo","zip":"0150","country":"NO"},` +
		`"created":"2019-03-02T10:11:12Z","score":-12.5e-3,"bio":"says \"hi\" \u00e9","friends":[` + strings.Join(items, ",") + `]}`)
}

func validBenchLarge() []byte {
	small := string(validBenchSmall())
	var b strings.Builder
	b.WriteString(`{"page":1,"items":[`)
	for i := 0; b.Len() < 100_000; i++ {
		if i > 0 {
			b.WriteString(",\n  ")
		}
		b.WriteString(small)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

func TestValidBenchFixtures(t *testing.T) {
	for _, b := range [][]byte{validBenchSmall(), validBenchLarge()} {
		if !json.Valid(b) || !validJSON(b) {
			t.Fatalf("fixture of %d bytes is not valid", len(b))
		}
	}
	if n := len(validBenchSmall()); n < 600 || n > 800 {
		t.Fatalf("small fixture is %d bytes", n)
	}
}

// BenchmarkValidJSON compares the validator with gjson.ValidBytes (what
// fetch used before: recursive, no depth limit) and json.Valid.
func BenchmarkValidJSON(b *testing.B) {
	validators := []struct {
		name string
		f    func([]byte) bool
	}{
		{"manifold", validJSON},
		{"gjson", gjson.ValidBytes},
		{"encoding-json", json.Valid},
	}
	for _, size := range []struct {
		name string
		body []byte
	}{{"700B", validBenchSmall()}, {"100KB", validBenchLarge()}} {
		for _, v := range validators {
			b.Run(size.name+"/"+v.name, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(size.body)))
				for b.Loop() {
					if !v.f(size.body) {
						b.Fatal("invalid")
					}
				}
			})
		}
	}
}
