package fetch_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// Keys are compared as a client decoding the answer with encoding/json
// sees them: every invalid UTF-8 byte (and every lone surrogate escape) is
// U+FFFD there. Merge compared the bytes gjson kept, so two keys differing
// only in invalid bytes were two entries of the merged answer: one key
// twice for its clients, and the later backend did not win; a rename or
// allow/deny name never matched such a key. (Found by FuzzReshapeMerge;
// the surrogate cases held already and are kept as guards.)
func TestMergeComparesKeysAsClientsDecodeThem(t *testing.T) {
	tests := []struct {
		name  string
		parts []string
		want  string // the merged answer, decoded and re-encoded
	}{
		{"invalid UTF-8 bytes", []string{"{\"\xff\":1,\"\xfe\":2}", "{\"\xff\":3}"}, "{\"\ufffd\":3}"},
		{"lone surrogates", []string{`{"\ud800":1}`, `{"\udfff":2}`}, "{\"\ufffd\":2}"},
		{"lone surrogate before an escape", []string{`{"\ud800\u0041":1}`, `{"\ufffdA":2,"\ufffd":3}`}, "{\"\ufffd\":3,\"\ufffdA\":2}"},
		{"a pair is its character", []string{`{"\ud83d\ude00":1}`, `{"😀":2}`}, `{"😀":2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var parts []fetch.Part
			for _, p := range tt.parts {
				parts = append(parts, fetch.Part{Body: []byte(p)})
			}
			out := fetch.Merge(nil, parts)
			d := json.NewDecoder(bytes.NewReader(out))
			d.Token()
			seen := map[string]bool{}
			for d.More() {
				k, _ := d.Token()
				if seen[k.(string)] {
					t.Fatalf("Merge = %q: key %q twice for a client", out, k)
				}
				seen[k.(string)] = true
				var skip json.RawMessage
				d.Decode(&skip)
			}
			var v map[string]any
			if err := json.Unmarshal(out, &v); err != nil {
				t.Fatal(err)
			}
			if got, _ := json.Marshal(v); string(got) != tt.want {
				t.Fatalf("Merge = %q decodes to %s, want %s", out, got, tt.want)
			}
		})
	}
}

func TestReshapeComparesKeysAsClientsDecodeThem(t *testing.T) {
	p, err := fetch.NewPlan("", []string{"\ufffdA", "b"}, nil, map[string]string{"\ufffd": "x"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(nil, []byte("{\"\\ud800\\u0041\":1,\"\\ud800\":2,\"b\":{\"\xff\":3},\"c\":4}"))
	if err != nil {
		t.Fatal(err)
	}
	// allow keeps "\ud800\u0041" (U+FFFD A) and b; "\ud800" alone is U+FFFD,
	// not allowed.
	if want := "{\"\\ud800\\u0041\":1,\"b\":{\"\xff\":3}}"; string(out) != want {
		t.Fatalf("Apply = %q, want %q", out, want)
	}
	p, _ = fetch.NewPlan("", nil, nil, map[string]string{"\ufffd": "x"})
	if out, _ := p.Apply(nil, []byte("{\"\xff\":1}")); string(out) != `{"x":1}` {
		t.Fatalf("rename of an invalid UTF-8 key: %q", out)
	}
}
