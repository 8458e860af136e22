package fetch

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// validJSON must accept exactly what encoding/json accepts: a body it
// wrongly accepted would reach a client as broken JSON, one it wrongly
// refused would fail a healthy backend.
var validJSONSeeds = []string{
	`{}`, `[]`, `1`, `01`, `1.`, `.5`, `+1`, `-`, `-0`, `-01`, `1e`, `1e+`, `1E5`, `0.1e-5`, `[1e999]`,
	`"a"`, "\"\x01\"", `"\x"`, `"\u12"`, `"\u12zz"`, "\"\xff\"", "\"a\nb\"", `"\/"`, `"\'"`,
	`{} x`, `{}{}`, ` {} `, `{"a":1,}`, `[1,]`, `{"a"}`, `{a:1}`, `[1 2]`, `{"a":1 "b":2}`, `[-]`, `{"":""}`,
	`tru`, `true`, `nul`, `null`, `NaN`, "{\"a\":\t1}", "\x00", ``, ` `,
	`{"a":[{"b":[1,2,{"c":null}]}],"n":9007199254740993,"f":0.1000000000000000055511151231257827}`,
	`[`, `]`, `{`, `}`, `[}`, `{]`, `{"a":}`, `{"a" 1}`, `{,}`, `[,]`, `[1,,2]`, `{"a":1,,"b":2}`, `{1:2}`,
	`"\uD800"`, `"\uDFFF\uD800"`, `"\u00e9\u20AC"`, `"\"`, `"\\"`, `"a\"b"`, "\"\x7f\"", "\"\xc3\xa9\"",
	`-0.0e-0`, `0e0`, `1E+2`, `1e-`, `1.e5`, `00`, `-a`, `0x1`, `1_0`, "1\x00", `[1]]`, `[[1]`,
	`truex`, `[true,false,null]`, `[truefalse]`, `{"a":true}x`, "\t\n\r [1] \t\n\r", "\v[1]", "\f1",
	"[\"\t\"]", `{"a":{"b":{"c":[[],{}]}}}`, `[{},[],""]`,
}

// nested wraps inner in depth arrays (or objects under the key "k").
func nested(depth int, objects bool, inner string) []byte {
	open, close := "[", "]"
	if objects {
		open, close = `{"k":`, "}"
	}
	var b bytes.Buffer
	b.WriteString(strings.Repeat(open, depth))
	b.WriteString(inner)
	b.WriteString(strings.Repeat(close, depth))
	return b.Bytes()
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range validJSONSeeds {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

// encoding/json refuses more than 10000 nested arrays and objects; so must
// validJSON, exactly where it flips (10000 open containers are fine, 10001
// are not, whatever follows), so a hostile upstream cannot hand the
// gateway a body that encoding/json (and any client using it) refuses.
func TestValidJSONDepthAgreesWithEncodingJSON(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001, 20000} {
		for _, objects := range []bool{false, true} {
			for _, inner := range []string{"1", "[]", "{}", `[1]`, `{"a":1}`, "", "x"} {
				b := nested(depth, objects, inner)
				if got, want := validJSON(b), json.Valid(b); got != want {
					t.Errorf("depth %d (objects %v) around %q: validJSON %v, encoding/json %v", depth, objects, inner, got, want)
				}
			}
		}
	}
	// Mixed kinds, and depth reached a second time after closing down.
	mixed := strings.Repeat(`[{"a":`, 5000) + "1" + strings.Repeat(`}]`, 5000)
	for _, c := range []string{mixed, "[" + mixed + "]", "[" + mixed + "," + mixed + "]", "[[" + mixed + "]]"} {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("mixed nesting (%d bytes): validJSON %v, encoding/json %v", len(c), got, want)
		}
	}
	// Unclosed: only the opening matters past the limit.
	for _, depth := range []int{10000, 10001} {
		b := []byte(strings.Repeat("[", depth))
		if validJSON(b) {
			t.Errorf("%d unclosed arrays accepted", depth)
		}
	}
}

// validJSON allocates nothing at ordinary depths.
func TestValidJSONDoesNotAllocate(t *testing.T) {
	b := nested(200, true, `{"a":[1,2.5e3,"x\u00e9",true,null]}`)
	if n := testing.AllocsPerRun(100, func() { validJSON(b) }); n != 0 {
		t.Fatalf("validJSON allocated %v times per call", n)
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONSeeds {
		f.Add([]byte(c), uint16(0), false)
	}
	for _, depth := range []uint16{1, 9999, 10000, 10001} {
		for _, c := range []string{"1", "[]", `{"a":[]}`, "[", "x"} {
			f.Add([]byte(c), depth, depth%2 == 0)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, depth uint16, objects bool) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
		if depth == 0 {
			return
		}
		// The same input at the bottom of depth containers: holds the
		// depth limit, and everything inside, to encoding/json's verdict.
		d := nested(int(depth), objects, string(b))
		if got, want := validJSON(d), json.Valid(d); got != want {
			t.Fatalf("validJSON(%q nested %d deep, objects %v) = %v, encoding/json says %v", b, depth, objects, got, want)
		}
	})
}
