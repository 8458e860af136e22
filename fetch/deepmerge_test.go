package fetch

import (
	"encoding/json"
	"testing"
)

func TestMergeDeep(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		parts []Part
		want  string
	}{
		{"nothing", nil, `{}`},
		{"disjoint keys are as Merge has them", []Part{{Body: []byte(`{"a":1}`)}, {Body: []byte(`{"b":2}`)}}, `{"a":1,"b":2}`},
		{"objects merge recursively",
			[]Part{{Body: []byte(`{"user":{"id":7,"name":"Ada"}}`)}, {Body: []byte(`{"user":{"email":"a@x","name":"Ada L"}}`)}},
			`{"user":{"id":7,"name":"Ada L","email":"a@x"}}`},
		{"three levels",
			[]Part{{Body: []byte(`{"a":{"b":{"c":1,"d":[1]}}}`)}, {Body: []byte(`{"a":{"b":{"e":2,"d":[2,3]}}}`)}},
			`{"a":{"b":{"c":1,"d":[1,2,3],"e":2}}}`},
		{"arrays concatenate in config order",
			[]Part{{Body: []byte(`{"items":[{"id":1}]}`)}, {Body: []byte(`{"items":[{"id":2},{"id":3}]}`)}, {Body: []byte(`{"items":[]}`)}, {Body: []byte(`{"items":[ 4 ]}`)}},
			`{"items":[{"id":1},{"id":2},{"id":3},4]}`},
		{"empty arrays on both sides", []Part{{Body: []byte(`{"x":[]}`)}, {Body: []byte(`{"x":[ ]}`)}}, `{"x":[]}`},
		{"a scalar over an object: the later wins", []Part{{Body: []byte(`{"a":{"b":1}}`)}, {Body: []byte(`{"a":5}`)}}, `{"a":5}`},
		{"an object over an array: the later wins", []Part{{Body: []byte(`{"a":[1]}`)}, {Body: []byte(`{"a":{"b":1}}`)}}, `{"a":{"b":1}}`},
		{"then merges again after a replacement", []Part{{Body: []byte(`{"a":1}`)}, {Body: []byte(`{"a":{"b":1}}`)}, {Body: []byte(`{"a":{"c":2}}`)}}, `{"a":{"b":1,"c":2}}`},
		{"null replaces", []Part{{Body: []byte(`{"a":{"b":1}}`)}, {Body: []byte(`{"a":null}`)}}, `{"a":null}`},
		{"groups take part", []Part{{Group: "order", Body: []byte(`{"id":1,"lines":[1]}`)}, {Body: []byte(`{"order":{"total":"9.50","lines":[2]}}`)}},
			`{"order":{"id":1,"lines":[1,2],"total":"9.50"}}`},
		{"two groups of one name merge", []Part{{Group: "g", Body: []byte(`[1]`)}, {Group: "g", Body: []byte(`[2]`)}}, `{"g":[1,2]}`},
		{"non-objects go under collection", []Part{{Body: []byte(`[1]`)}, {Body: []byte(`[2]`)}}, `{"collection":[1,2]}`},
		{"exact numbers and escapes kept", []Part{{Body: []byte(`{"n":{"a":9007199254740993}}`)}, {Body: []byte(`{"n":{"b":0.1000000000000000055511151231257827,"s":"\u00e9\n"}}`)}},
			`{"n":{"a":9007199254740993,"b":0.1000000000000000055511151231257827,"s":"\u00e9\n"}}`},
		{"keys compare decoded", []Part{{Body: []byte(`{"a":{"x":1}}`)}, {Body: []byte(`{"\u0061":{"y":2}}`)}}, `{"a":{"x":1,"y":2}}`},
		{"a key repeated in one object merges too", []Part{{Body: []byte(`{"a":{"x":1},"a":{"y":2}}`)}}, `{"a":{"x":1,"y":2}}`},
		{"whitespace around bodies", []Part{{Body: []byte(" {\"a\": [1] }\n")}, {Body: []byte(`{"a" : [2]}`)}}, `{"a":[1,2]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := string(MergeDeep(nil, tc.parts))
			if got != tc.want {
				t.Errorf("MergeDeep = %s\nwant         %s", got, tc.want)
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

// Above mergeLinearMax keys an object switches to an index; results must
// not change at the switch.
func TestMergeDeepManyKeys(t *testing.T) {
	t.Parallel()
	a, b := []byte(`{`), []byte(`{`)
	for i := range 3 * mergeLinearMax {
		if i > 0 {
			a, b = append(a, ','), append(b, ',')
		}
		a = append(a, `"k`+itoa(i)+`":{"a":`+itoa(i)+`}`...)
		b = append(b, `"k`+itoa(i)+`":{"b":`+itoa(i)+`}`...)
	}
	a, b = append(a, '}'), append(b, '}')
	var got map[string]map[string]int
	if err := json.Unmarshal(MergeDeep(nil, []Part{{Body: a}, {Body: b}}), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3*mergeLinearMax {
		t.Fatalf("%d keys, want %d", len(got), 3*mergeLinearMax)
	}
	for k, v := range got {
		if len(v) != 2 || v["a"] != v["b"] {
			t.Errorf("%s = %v, want a and b merged", k, v)
		}
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
