package fetch

import (
	"encoding/json"
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
}

func TestValidJSONAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range validJSONSeeds {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%q) = %v, encoding/json says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validJSONSeeds {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}
