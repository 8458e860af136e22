package fetch

import (
	"encoding/json"
	"testing"

	"github.com/tidwall/gjson"
)

// eachMember sees the members gjson sees, raw texts and decoded keys
// alike, for every valid object; on anything else it neither panics nor
// reads out of range.
func FuzzEachMember(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"a":1}`, `{"a" : [1,{"b":"}"}] , "c":"\"]"}`, `{"\u0061":true,"é":false,"n":null}`,
		`{"x":-1.5e+3,"y":"a\\"}`, `{"a":{"b":{"c":[[]]}}}`, `{"a":1,}`, `{"a"}`, `{"a":"`, `{"a":[}`, `[1]`, `{"a":tru}`,
		`{"a":0.1000000000000000055511151231257827}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		type member struct{ raw, key, value string }
		var got []member
		ok := eachMember(b, func(raw, key, value string) { got = append(got, member{raw, key, value}) })
		if !json.Valid(b) || len(b) == 0 || b[0] != '{' {
			return // only robustness is asked: no panic, no hang
		}
		if !ok {
			t.Fatalf("eachMember(%s) = false for a valid object", b)
		}
		var want []member
		gjson.ParseBytes(b).ForEach(func(k, v gjson.Result) bool {
			want = append(want, member{k.Raw, reshapeKey(k), v.Raw})
			return true
		})
		if len(got) != len(want) {
			t.Fatalf("eachMember(%s): %d members, gjson %d", b, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("eachMember(%s) member %d = %+v, gjson %+v", b, i, got[i], want[i])
			}
		}
	})
}
