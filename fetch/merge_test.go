package fetch_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// flat returns ungrouped parts with the given bodies.
func flat(bodies ...string) []fetch.Part {
	parts := make([]fetch.Part, len(bodies))
	for i, b := range bodies {
		parts[i] = fetch.Part{Body: []byte(b)}
	}
	return parts
}

func TestMerge(t *testing.T) {
	cases := []struct {
		name  string
		parts []fetch.Part
		want  string // exact bytes
	}{
		{name: "nil parts", parts: nil, want: `{}`},
		{name: "empty parts", parts: []fetch.Part{}, want: `{}`},
		{name: "single", parts: flat(`{"a":1}`), want: `{"a":1}`},
		{name: "disjoint", parts: flat(`{"a":1}`, `{"b":2,"c":[3]}`, `{"d":{"e":4}}`),
			want: `{"a":1,"b":2,"c":[3],"d":{"e":4}}`},
		{name: "groups any type", parts: []fetch.Part{
			{Group: "user", Body: []byte(`{"id":1}`)},
			{Group: "orders", Body: []byte(`[1,2]`)},
			{Group: "count", Body: []byte(`3`)},
			{Group: "name", Body: []byte(`"x"`)},
			{Group: "none", Body: []byte(`null`)},
		}, want: `{"user":{"id":1},"orders":[1,2],"count":3,"name":"x","none":null}`},
		{name: "groups and flat", parts: []fetch.Part{
			{Body: []byte(`{"a":1}`)},
			{Group: "g", Body: []byte(`{"a":2}`)},
			{Body: []byte(`{"b":3}`)},
		}, want: `{"a":1,"g":{"a":2},"b":3}`},
		{name: "later wins at first position", parts: flat(`{"a":1,"b":2}`, `{"c":3,"a":4}`),
			want: `{"a":4,"b":2,"c":3}`},
		{name: "three-way conflict", parts: flat(`{"a":1,"b":1}`, `{"b":2,"a":2}`, `{"a":3}`),
			want: `{"a":3,"b":2}`},
		{name: "group overrides flat key", parts: []fetch.Part{
			{Body: []byte(`{"user":1,"x":0}`)},
			{Group: "user", Body: []byte(`{"id":2}`)},
		}, want: `{"user":{"id":2},"x":0}`},
		{name: "flat key overrides group", parts: []fetch.Part{
			{Group: "user", Body: []byte(`{"id":2}`)},
			{Body: []byte(`{"x":0,"user":1}`)},
		}, want: `{"user":1,"x":0}`},
		{name: "same group twice", parts: []fetch.Part{
			{Group: "g", Body: []byte(`1`)},
			{Group: "h", Body: []byte(`2`)},
			{Group: "g", Body: []byte(`3`)},
		}, want: `{"g":3,"h":2}`},
		{name: "duplicate keys in one object", parts: flat(`{"a":1,"b":2,"a":3}`), want: `{"a":3,"b":2}`},
		{name: "group body keeps its own duplicates",
			parts: []fetch.Part{{Group: "g", Body: []byte(`{"a":1,"a":2}`)}}, want: `{"g":{"a":1,"a":2}}`},
		{name: "array without group", parts: flat(`{"a":1}`, `[1,2]`), want: `{"a":1,"collection":[1,2]}`},
		{name: "scalar without group", parts: flat(`"s"`), want: `{"collection":"s"}`},
		{name: "null without group", parts: flat(`null`), want: `{"collection":null}`},
		{name: "two collections later wins", parts: flat(`[1]`, `{"a":0}`, `[2]`), want: `{"collection":[2],"a":0}`},
		{name: "collection conflicts with key", parts: flat(`{"collection":0,"b":1}`, `[3]`),
			want: `{"collection":[3],"b":1}`},
		{name: "nil body", parts: []fetch.Part{{Body: nil}}, want: `{}`},
		{name: "empty body", parts: flat(``, `{"a":1}`), want: `{"a":1}`},
		{name: "whitespace body", parts: flat(" \n\t", `{"a":1}`), want: `{"a":1}`},
		{name: "empty object body", parts: flat(`{}`, ` { } `), want: `{}`},
		{name: "empty body in group", parts: []fetch.Part{{Group: "g"}, {Group: "h", Body: []byte(" ")}},
			want: `{"g":{},"h":{}}`},
		{name: "exact numbers and escapes", parts: flat(
			`{"n":9007199254740993,"f":0.1000000000000000055511151231257827}`,
			`{"s":"\u00e9\n","q":"a\"b\\c\/"}`),
			want: `{"n":9007199254740993,"f":0.1000000000000000055511151231257827,"s":"\u00e9\n","q":"a\"b\\c\/"}`},
		{name: "exact values in group", parts: []fetch.Part{{Group: "g", Body: []byte(`[9007199254740993,"\u00e9\n"]`)}},
			want: `{"g":[9007199254740993,"\u00e9\n"]}`},
		{name: "escaped key conflicts, first raw kept", parts: flat(`{"\u0061":1,"b":0}`, `{"a":2}`),
			want: `{"\u0061":2,"b":0}`},
		{name: "plain key then escaped", parts: flat(`{"a":1}`, `{"\u0061":2}`), want: `{"a":2}`},
		{name: "escaped unicode key vs group", parts: []fetch.Part{
			{Body: []byte(`{"caf\u00e9":1}`)},
			{Group: "café", Body: []byte(`2`)},
		}, want: `{"caf\u00e9":2}`},
		{name: "group name escaped", parts: []fetch.Part{{Group: "we\"ird\n\\", Body: []byte(`1`)}},
			want: `{"we\"ird\n\\":1}`},
		{name: "group name control and invalid UTF-8", parts: []fetch.Part{{Group: "\x01\xff", Body: []byte(`1`)}},
			want: `{"\u0001\ufffd":1}`},
		{name: "whitespace: structure compact, values raw",
			parts: flat("  {\n \"a\" : 1 ,\n \"b\" : [1, 2] }  \n"),
			want:  `{"a":1,"b":[1, 2]}`},
		{name: "whitespace around group body trimmed",
			parts: []fetch.Part{{Group: "g", Body: []byte("\n { \"a\" : 1 } \n")}},
			want:  `{"g":{ "a" : 1 }}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fetch.Merge(nil, tc.parts)
			if string(got) != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

// mergeReference is a slow, obviously correct model of Merge's ordering
// rules, decoding keys with encoding/json (values stay raw).
func mergeReference(t *testing.T, parts []fetch.Part) string {
	t.Helper()
	type entry struct{ raw, value string }
	var order []string
	entries := map[string]*entry{}
	put := func(key, raw, value string) {
		if e, ok := entries[key]; ok {
			e.value = value
			return
		}
		order = append(order, key)
		entries[key] = &entry{raw, value}
	}
	for _, p := range parts {
		dec := json.NewDecoder(bytes.NewReader(p.Body))
		var members []struct{ key, raw, value string }
		if _, err := dec.Token(); err != nil { // {
			t.Fatal(err)
		}
		for dec.More() {
			start := dec.InputOffset()
			tok, err := dec.Token()
			if err != nil {
				t.Fatal(err)
			}
			rawKey := strings.TrimLeft(string(p.Body[start:dec.InputOffset()]), " ,")
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				t.Fatal(err)
			}
			members = append(members, struct{ key, raw, value string }{tok.(string), rawKey, string(v)})
		}
		for _, m := range members {
			put(m.key, m.raw, m.value)
		}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range order {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(entries[k].raw + ":" + entries[k].value)
	}
	b.WriteByte('}')
	return b.String()
}

// TestMergeManyKeys crosses the threshold where Merge switches from a linear
// scan to a map, with conflicts before, at and after the switch.
func TestMergeManyKeys(t *testing.T) {
	obj := func(from, to int, val string) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := from; i < to; i++ {
			if i > from {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `"k%d":%s`, i, val)
		}
		b.WriteByte('}')
		return b.String()
	}
	cases := []struct {
		name  string
		parts []fetch.Part
	}{
		{"100 then overlapping 100", flat(obj(0, 100, "0"), obj(50, 150, "1"))},
		{"exactly at threshold", flat(obj(0, 32, "0"), obj(0, 1, "1"), obj(31, 34, "2"))},
		{"one past threshold", flat(obj(0, 33, "0"), obj(32, 33, "1"), obj(0, 40, "2"))},
		{"conflict inside big object", flat(`{"k1":0,` + obj(2, 80, "1")[1:len(obj(2, 80, "1"))-1] + `,"k1":9,"k79":9}`)},
		{"escaped keys past threshold", flat(obj(0, 40, "0"), `{"k\u00331":1,"\u006b5":2}`)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := fetch.Merge(nil, tc.parts)
			if want := mergeReference(t, tc.parts); string(got) != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

// TestMergeRandom compares Merge with the reference model on generated
// inputs with many conflicts, escaped keys and sizes on both sides of the
// linear-scan threshold.
func TestMergeRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	keyText := func() (string, string) {
		n := rng.IntN(60)
		plain := fmt.Sprintf("k%d", n)
		switch rng.IntN(4) {
		case 0: // escape the first letter
			return plain, `"\u006b` + plain[1:] + `"`
		case 1: // a non-ASCII key, sometimes escaped
			if rng.IntN(2) == 0 {
				return plain + "é", `"` + plain + `\u00e9"`
			}
			return plain + "é", `"` + plain + `é"`
		}
		return plain, `"` + plain + `"`
	}
	for iter := range 200 {
		var parts []fetch.Part
		for range 1 + rng.IntN(4) {
			var b strings.Builder
			b.WriteByte('{')
			for i := range rng.IntN(40) {
				if i > 0 {
					b.WriteString(", ")
				}
				_, raw := keyText()
				fmt.Fprintf(&b, `%s : [%d, "\n"]`, raw, rng.IntN(1000))
			}
			b.WriteByte('}')
			parts = append(parts, fetch.Part{Body: []byte(b.String())})
		}
		got := fetch.Merge(nil, parts)
		if want := mergeReference(t, parts); string(got) != want {
			t.Fatalf("iteration %d:\n got %s\nwant %s", iter, got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("iteration %d: output is not valid JSON: %s", iter, got)
		}
	}
}

func TestMergeBuffers(t *testing.T) {
	parts := flat(`{"a":1}`, `{"b":2}`)
	const want = `{"a":1,"b":2}`

	t.Run("appends to dst", func(t *testing.T) {
		if got := fetch.Merge([]byte("x="), parts); string(got) != "x="+want {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("reused dst", func(t *testing.T) {
		buf := fetch.Merge(nil, flat(`{"long":"a much longer first answer","z":[1,2,3]}`))
		for i, ps := range [][]fetch.Part{parts, flat(`{"c":3}`), parts} {
			buf = fetch.Merge(buf[:0], ps)
			w := want
			if i == 1 {
				w = `{"c":3}`
			}
			if string(buf) != w {
				t.Fatalf("round %d: got %s, want %s", i, buf, w)
			}
		}
	})
	t.Run("reused dst does not reallocate", func(t *testing.T) {
		buf := make([]byte, 0, 256)
		out := fetch.Merge(buf[:0], parts)
		if &out[0] != &buf[:1][0] {
			t.Errorf("Merge reallocated a dst with enough capacity")
		}
	})
	t.Run("bodies inside dst capacity", func(t *testing.T) {
		buf := make([]byte, 0, 64)
		buf = append(buf, `{"a":1}{"b":2}`...)
		got := fetch.Merge(buf[:0], []fetch.Part{{Body: buf[:7]}, {Body: buf[7:14]}})
		if string(got) != want {
			t.Fatalf("got %s", got)
		}
	})
	t.Run("input not modified", func(t *testing.T) {
		body := []byte(`{"a":1,"a":2}`)
		fetch.Merge(nil, []fetch.Part{{Body: body}})
		if string(body) != `{"a":1,"a":2}` {
			t.Fatalf("body modified: %s", body)
		}
	})
}

func ExampleMerge() {
	parts := []fetch.Part{
		{Body: []byte(`{"id":9007199254740993,"name":"Ann","status":"new"}`)},
		{Group: "orders", Body: []byte(`[{"id":1,"total":0.1000000000000000055511151231257827}]`)},
		{Body: []byte(`{"status":"vip","score":7}`)},
	}
	fmt.Println(string(fetch.Merge(nil, parts)))
	// Output: {"id":9007199254740993,"name":"Ann","status":"vip","orders":[{"id":1,"total":0.1000000000000000055511151231257827}],"score":7}
}
