package fetch_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-gw/manifold/fetch"
)

// reshapeDoc is a compact answer used by most reshape cases.
const reshapeDoc = `{"id":1,"name":"Ann","address":{"city":"Oslo","zip":"0150","geo":{"lat":1,"lng":2}},` +
	`"orders":[{"id":10,"total":5},{"id":11,"total":6},7,"x"],"meta":{"a":1}}`

type reshapeCase struct {
	name   string
	target string
	allow  []string
	deny   []string
	rename map[string]string
	in     string
	want   string // exact bytes
}

func runReshapeCases(t *testing.T, cases []reshapeCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := fetch.NewPlan(tc.target, tc.allow, tc.deny, tc.rename)
			if err != nil {
				t.Fatalf("NewPlan: %v", err)
			}
			got, err := p.Apply(nil, []byte(tc.in))
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Apply(%s)\n got %s\nwant %s", tc.in, got, tc.want)
			}
			if !json.Valid(got) {
				t.Errorf("output is not valid JSON: %s", got)
			}
		})
	}
}

func TestReshapeTarget(t *testing.T) {
	runReshapeCases(t, []reshapeCase{
		{name: "object", target: "address", in: reshapeDoc,
			want: `{"city":"Oslo","zip":"0150","geo":{"lat":1,"lng":2}}`},
		{name: "nested", target: "address.geo", in: reshapeDoc, want: `{"lat":1,"lng":2}`},
		{name: "scalar value", target: "address.city", in: reshapeDoc, want: `"Oslo"`},
		{name: "array value", target: "orders", in: reshapeDoc,
			want: `[{"id":10,"total":5},{"id":11,"total":6},7,"x"]`},
		{name: "raw whitespace kept", target: "data.user",
			in: "{ \"data\" : {\n \"user\" : {\"a\": 1,  \"b\" :[ 2 ]} } }", want: `{"a": 1,  "b" :[ 2 ]}`},
		{name: "last duplicate wins", target: "a", in: `{"a":{"x":1},"a":{"x":2}}`, want: `{"x":2}`},
		{name: "escaped key matches", target: "data", in: `{"d\u0061ta":{"x":1}}`, want: `{"x":1}`},
		{name: "then allow", target: "data", allow: []string{"x"}, in: `{"data":{"x":1,"y":2},"x":3}`,
			want: `{"x":1}`},
	})
}

// An answer that is an array gets target, then allow/deny, then rename on
// each object element; other elements are kept as they are, as allow and
// deny keep them.
func TestReshapeTargetOnArrayAnswer(t *testing.T) {
	runReshapeCases(t, []reshapeCase{
		{name: "each element", target: "data", in: `[{"data":{"id":1},"x":1},{"data":{"id":2},"x":2}]`,
			want: `[{"id":1},{"id":2}]`},
		{name: "deep", target: "a.b", in: ` [ {"a":{"b":[1, 2]}} , {"a":{"b":"s"}} ] `, want: `[[1, 2],"s"]`},
		{name: "then allow and rename", target: "data", allow: []string{"id", "name"}, rename: map[string]string{"id": "user_id"},
			in:   `[{"data":{"id":1,"name":"a","secret":1}},{"data":{"id":2,"secret":2}}]`,
			want: `[{"user_id":1,"name":"a"},{"user_id":2}]`},
		{name: "non-object elements kept", target: "data", in: `[{"data":1},7,"x",null,[{"data":2}]]`,
			want: `[1,7,"x",null,[{"data":2}]]`},
		{name: "empty", target: "data", in: `[]`, want: `[]`},
	})
}

func TestReshapeTargetMissing(t *testing.T) {
	cases := []struct {
		name, target, in string
	}{
		{"missing top", "nope", reshapeDoc},
		{"missing nested", "address.nope", reshapeDoc},
		{"missing deep", "address.geo.alt.x", reshapeDoc},
		{"into string", "name.first", reshapeDoc},
		{"into number", "id.x", reshapeDoc},
		{"into array", "orders.id", reshapeDoc},
		{"an element of an array answer lacks it", "id", `[{"id":1},{"x":2}]`},
		{"an element of an array answer is not an object on the way", "a.b", `[{"a":{"b":1}},{"a":3}]`},
		{"answer is scalar", "id", `42`},
		{"into null", "a.b", `{"a":null}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := fetch.NewPlan(tc.target, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			dst := []byte("keep")
			got, err := p.Apply(dst, []byte(tc.in))
			if !errors.Is(err, fetch.ErrTargetMissing) {
				t.Fatalf("err = %v, want ErrTargetMissing", err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tc.target)) {
				t.Errorf("error %q does not name the path %q", err, tc.target)
			}
			if string(got) != "keep" {
				t.Errorf("dst changed on error: %q", got)
			}
		})
	}
}

func TestReshapeAllow(t *testing.T) {
	runReshapeCases(t, []reshapeCase{
		{name: "flat", allow: []string{"id", "name"}, in: reshapeDoc, want: `{"id":1,"name":"Ann"}`},
		{name: "input order kept", allow: []string{"name", "id"}, in: reshapeDoc, want: `{"id":1,"name":"Ann"}`},
		{name: "nested", allow: []string{"address.city"}, in: reshapeDoc, want: `{"address":{"city":"Oslo"}}`},
		{name: "deep", allow: []string{"address.geo.lat", "id"}, in: reshapeDoc,
			want: `{"id":1,"address":{"geo":{"lat":1}}}`},
		{name: "whole wins over nested", allow: []string{"address.city", "address"}, in: reshapeDoc,
			want: `{"address":{"city":"Oslo","zip":"0150","geo":{"lat":1,"lng":2}}}`},
		{name: "whole wins either order", allow: []string{"address", "address.city"}, in: reshapeDoc,
			want: `{"address":{"city":"Oslo","zip":"0150","geo":{"lat":1,"lng":2}}}`},
		{name: "missing top field absent", allow: []string{"nope", "id"}, in: reshapeDoc, want: `{"id":1}`},
		{name: "missing nested field", allow: []string{"address.nope"}, in: reshapeDoc, want: `{"address":{}}`},
		{name: "nothing matches", allow: []string{"nope"}, in: reshapeDoc, want: `{}`},
		{name: "intermediate array", allow: []string{"orders.id"}, in: reshapeDoc,
			want: `{"orders":[{"id":10},{"id":11},7,"x"]}`},
		{name: "intermediate array whole", allow: []string{"orders"}, in: reshapeDoc,
			want: `{"orders":[{"id":10,"total":5},{"id":11,"total":6},7,"x"]}`},
		{name: "top-level array", allow: []string{"id"}, in: `[{"id":1,"x":2},3,{"id":4},{"x":5},null]`,
			want: `[{"id":1},3,{"id":4},{},null]`},
		{name: "top-level array nested", allow: []string{"u.id"}, in: `[{"u":{"id":1,"n":2}},{"u":[{"id":3,"n":4}]}]`,
			want: `[{"u":{"id":1}},{"u":[{"id":3}]}]`},
		{name: "empty array", allow: []string{"id"}, in: `[]`, want: `[]`},
		{name: "empty object", allow: []string{"id"}, in: `{}`, want: `{}`},
		{name: "scalar under nested path kept", allow: []string{"name.first"}, in: reshapeDoc,
			want: `{"name":"Ann"}`},
		{name: "duplicate keys all kept", allow: []string{"a"}, in: `{"a":1,"b":2,"a":3}`, want: `{"a":1,"a":3}`},
		{name: "escaped key matches", allow: []string{"café"}, in: `{"caf\u00e9":1,"x":2}`, want: `{"caf\u00e9":1}`},
		{name: "pretty input compact structure raw values", allow: []string{"a", "b"},
			in: "{\n  \"a\": { \"x\" : 1 },\n  \"b\": [1, 2],\n  \"c\": 3\n}\n", want: `{"a":{ "x" : 1 },"b":[1, 2]}`},
		{name: "many allowed fields (map lookup)",
			allow: []string{"f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "f9", "f10"},
			in:    `{"f10":10,"x":0,"f3":3,"f11":11,"f0":0}`, want: `{"f10":10,"f3":3,"f0":0}`},
	})
}

func TestReshapeDeny(t *testing.T) {
	runReshapeCases(t, []reshapeCase{
		{name: "flat", deny: []string{"meta", "orders", "address"}, in: reshapeDoc, want: `{"id":1,"name":"Ann"}`},
		{name: "nested", deny: []string{"address.geo", "address.zip"}, in: reshapeDoc,
			want: `{"id":1,"name":"Ann","address":{"city":"Oslo"},"orders":[{"id":10,"total":5},{"id":11,"total":6},7,"x"],"meta":{"a":1}}`},
		{name: "intermediate array", deny: []string{"orders.total", "address", "meta"}, in: reshapeDoc,
			want: `{"id":1,"name":"Ann","orders":[{"id":10},{"id":11},7,"x"]}`},
		{name: "top-level array", deny: []string{"x"}, in: `[{"id":1,"x":2},3,{"x":5}]`, want: `[{"id":1},3,{}]`},
		{name: "whole wins over nested", deny: []string{"address.geo", "address", "orders", "meta"}, in: reshapeDoc,
			want: `{"id":1,"name":"Ann"}`},
		{name: "missing is fine", deny: []string{"nope", "address.nope.x", "orders", "meta", "address"}, in: reshapeDoc,
			want: `{"id":1,"name":"Ann"}`},
		{name: "duplicate keys all dropped", deny: []string{"a"}, in: `{"a":1,"b":2,"a":3}`, want: `{"b":2}`},
	})
}

func TestReshapeAllowDeny(t *testing.T) {
	runReshapeCases(t, []reshapeCase{
		{name: "deny inside allowed", allow: []string{"address", "id"}, deny: []string{"address.geo"}, in: reshapeDoc,
			want: `{"id":1,"address":{"city":"Oslo","zip":"0150"}}`},
		{name: "deny whole beats allow nested", allow: []string{"address.geo", "id"}, deny: []string{"address"},
			in: reshapeDoc, want: `{"id":1}`},
		{name: "same field", allow: []string{"id", "name"}, deny: []string{"id"}, in: reshapeDoc, want: `{"name":"Ann"}`},
		{name: "deeper deny", allow: []string{"address.geo"}, deny: []string{"address.geo.lng"}, in: reshapeDoc,
			want: `{"address":{"geo":{"lat":1}}}`},
		{name: "array elements", allow: []string{"orders"}, deny: []string{"orders.total"}, in: reshapeDoc,
			want: `{"orders":[{"id":10},{"id":11},7,"x"]}`},
	})
}

func TestReshapeRename(t *testing.T) {
	many := map[string]string{}
	for i := range 10 {
		many[fmt.Sprintf("k%d", i)] = fmt.Sprintf("r%d", i)
	}
	// More than 64 renames: the per-object bookkeeping spans several words.
	huge := map[string]string{}
	for i := range 70 {
		huge[fmt.Sprintf("k%02d", i)] = fmt.Sprintf("r%02d", i)
	}
	runReshapeCases(t, []reshapeCase{
		{name: "simple keeps position", rename: map[string]string{"name": "fullName"}, in: `{"id":1,"name":"Ann","x":2}`,
			want: `{"id":1,"fullName":"Ann","x":2}`},
		{name: "absent old key", rename: map[string]string{"nope": "x"}, in: `{"id":1}`, want: `{"id":1}`},
		{name: "collision existing after", rename: map[string]string{"id": "uid"}, in: `{"id":1,"uid":2}`,
			want: `{"uid":1}`},
		{name: "collision existing before", rename: map[string]string{"id": "uid"}, in: `{"uid":2,"x":0,"id":1,"y":3}`,
			want: `{"x":0,"uid":1,"y":3}`},
		{name: "no collision when rename does not fire", rename: map[string]string{"id": "uid"}, in: `{"uid":2}`,
			want: `{"uid":2}`},
		{name: "no collision when old key denied", deny: []string{"id"}, rename: map[string]string{"id": "uid"},
			in: `{"uid":2,"id":1}`, want: `{"uid":2}`},
		{name: "swap", rename: map[string]string{"a": "b", "b": "a"}, in: `{"a":1,"b":2}`, want: `{"b":1,"a":2}`},
		{name: "no-op rename keeps raw key", rename: map[string]string{"a": "a"}, in: `{"\u0061":1}`, want: `{"\u0061":1}`},
		{name: "escaped upstream key matches", rename: map[string]string{"café": "cafe"}, in: `{"caf\u00e9":1,"x":2}`,
			want: `{"cafe":1,"x":2}`},
		{name: "other keys keep raw escapes", rename: map[string]string{"x": "y"}, in: `{"caf\u00e9":1,"\u0078":2}`,
			want: `{"caf\u00e9":1,"y":2}`},
		{name: "new key escaped", rename: map[string]string{"a": "say \"hi\"\n\\ é"}, in: `{"a":1}`,
			want: `{"say \"hi\"\n\\ é":1}`},
		{name: "new key control and separators", rename: map[string]string{"a": "\x01\u2028<&>"}, in: `{"a":1}`,
			want: `{"\u0001\u2028<&>":1}`},
		{name: "top-level array elements", rename: map[string]string{"a": "z"}, in: `[{"a":1},{"a":2,"b":3},4,{"z":0,"a":5}]`,
			want: `[{"z":1},{"z":2,"b":3},4,{"z":5}]`},
		{name: "top level only", rename: map[string]string{"a": "z"}, in: `{"o":{"a":1},"l":[{"a":2}],"a":3}`,
			want: `{"o":{"a":1},"l":[{"a":2}],"z":3}`},
		{name: "chain", rename: map[string]string{"a": "b", "b": "c"}, in: `{"b":1,"a":2}`, want: `{"c":1,"b":2}`},
		{name: "new key invalid UTF-8", rename: map[string]string{"a": "x\xff"}, in: `{"a":1}`, want: `{"x\ufffd":1}`},
		{name: "duplicate old keys", rename: map[string]string{"a": "z"}, in: `{"a":1,"a":2}`, want: `{"z":1,"z":2}`},
		{name: "many renames (map lookup)", rename: many, in: `{"r3":0,"k3":3,"k9":9,"x":1}`, want: `{"r3":3,"r9":9,"x":1}`},
		{name: "more than 64 renames", rename: huge, in: `{"r69":0,"k00":0,"k69":69,"r01":1}`,
			want: `{"r00":0,"r69":69,"r01":1}`},
		{name: "scalar answer untouched", rename: map[string]string{"a": "z"}, in: `"a"`, want: `"a"`},
	})
}

func TestReshapeOrder(t *testing.T) {
	runReshapeCases(t, []reshapeCase{
		{name: "target then allow then rename", target: "data", allow: []string{"name", "id"},
			rename: map[string]string{"name": "n"}, in: `{"data":{"name":"A","x":1,"id":2},"name":"top"}`,
			want: `{"n":"A","id":2}`},
		{name: "allow names upstream keys", allow: []string{"n"}, rename: map[string]string{"name": "n"},
			in: `{"name":"A","x":1}`, want: `{}`},
		{name: "rename only survivors", allow: []string{"a"}, rename: map[string]string{"a": "x", "b": "y"},
			in: `{"a":1,"b":2}`, want: `{"x":1}`},
		{name: "deny then rename", deny: []string{"secret"}, rename: map[string]string{"secret": "s", "id": "uid"},
			in: `{"id":1,"secret":2}`, want: `{"uid":1}`},
		{name: "everything on array answer", allow: []string{"u.id", "k"}, deny: []string{"u.pw"},
			rename: map[string]string{"k": "key"}, in: `[{"u":{"id":1,"pw":2},"k":3,"z":4},"s"]`,
			want: `[{"u":{"id":1},"key":3},"s"]`},
	})
}

func TestReshapeScalarsUnchanged(t *testing.T) {
	for _, in := range []string{`"str"`, `"a\u00e9\n"`, `42`, `-0.5e10`, `9007199254740993`, `null`, `true`, `false`} {
		t.Run(in, func(t *testing.T) {
			p, err := fetch.NewPlan("", []string{"a"}, []string{"b"}, map[string]string{"c": "d"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Apply(nil, []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != in {
				t.Errorf("got %s, want %s", got, in)
			}
		})
	}
}

func TestReshapeExactness(t *testing.T) {
	in := `{"big":9007199254740993,"f":0.1000000000000000055511151231257827,"s":"\u00e9\n","drop":1,` +
		`"nested":{"n":9007199254740993,"s":"\u00e9\n","z":0},"list":[{"f":0.1000000000000000055511151231257827,"z":1}]}`
	want := `{"big":9007199254740993,"f":0.1000000000000000055511151231257827,"text":"\u00e9\n",` +
		`"nested":{"n":9007199254740993,"s":"\u00e9\n"},"list":[{"f":0.1000000000000000055511151231257827}]}`
	p, err := fetch.NewPlan("", []string{"big", "f", "s", "nested", "list.f"}, []string{"nested.z"},
		map[string]string{"s": "text"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Apply(nil, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
	for _, lit := range []string{`9007199254740993`, `0.1000000000000000055511151231257827`, `"\u00e9\n"`} {
		if !strings.Contains(string(got), lit) {
			t.Errorf("output lost %s", lit)
		}
	}
}

func TestReshapeTargetMissingMessage(t *testing.T) {
	cases := []struct{ target, in, want string }{
		{"data.user", `{"data":{}}`, `field "user" is missing`},
		{"data.user", `{"data":[1]}`, `"data" is an array, not an object`},
		{"a.b.c", `{"a":{"b":"s"}}`, `"a.b" is a string, not an object`},
		{"a", `[{"a":1},{"b":1}]`, `path "a": field "a" is missing (element 1 of the answer)`},
		{"a", `7`, `the answer is a number, not an object`},
		{"a.b", `{"a":true}`, `"a" is a boolean, not an object`},
		{"a.b", `{"a":null}`, `"a" is null, not an object`},
	}
	for _, tc := range cases {
		t.Run(tc.target+" in "+tc.in, func(t *testing.T) {
			p, err := fetch.NewPlan(tc.target, nil, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.Apply(nil, []byte(tc.in))
			if !errors.Is(err, fetch.ErrTargetMissing) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrTargetMissing mentioning %q", err, tc.want)
			}
		})
	}
}

func TestReshapeNewPlanErrors(t *testing.T) {
	cases := []struct {
		name   string
		target string
		allow  []string
		deny   []string
		rename map[string]string
	}{
		{name: "target double dot", target: "a..b"},
		{name: "target leading dot", target: ".a"},
		{name: "target trailing dot", target: "a."},
		{name: "target only dot", target: "."},
		{name: "allow empty path", allow: []string{"a", ""}},
		{name: "allow double dot", allow: []string{"a..b"}},
		{name: "deny trailing dot", deny: []string{"x."}},
		{name: "deny leading dot", deny: []string{".x"}},
		{name: "rename empty old", rename: map[string]string{"": "x"}},
		{name: "rename empty new", rename: map[string]string{"x": ""}},
		{name: "rename same new name", rename: map[string]string{"a": "z", "b": "z"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := fetch.NewPlan(tc.target, tc.allow, tc.deny, tc.rename)
			if err == nil {
				t.Fatalf("NewPlan succeeded (%v), want error", p)
			}
			if p != nil {
				t.Errorf("plan %v returned with error", p)
			}
		})
	}
}

func TestReshapePlanIdentity(t *testing.T) {
	mustPlan := func(target string, allow, deny []string, rename map[string]string) *fetch.Plan {
		t.Helper()
		p, err := fetch.NewPlan(target, allow, deny, rename)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		plan *fetch.Plan
		want bool
	}{
		{"nil plan", nil, true},
		{"nil inputs", mustPlan("", nil, nil, nil), true},
		{"empty inputs", mustPlan("", []string{}, []string{}, map[string]string{}), true},
		{"no-op rename", mustPlan("", nil, nil, map[string]string{"a": "a"}), true},
		{"target", mustPlan("a", nil, nil, nil), false},
		{"allow", mustPlan("", []string{"a"}, nil, nil), false},
		{"deny", mustPlan("", nil, []string{"a"}, nil), false},
		{"rename", mustPlan("", nil, nil, map[string]string{"a": "b"}), false},
	}
	in := " {\"a\" : 1 ,\"b\":[ 2 ]}\n"
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.plan.Identity(); got != tc.want {
				t.Fatalf("Identity() = %v, want %v", got, tc.want)
			}
			if !tc.want {
				return
			}
			got, err := tc.plan.Apply([]byte("pre"), []byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "pre"+in {
				t.Errorf("identity Apply = %q, want %q", got, "pre"+in)
			}
		})
	}
}

func TestReshapeApplyBuffers(t *testing.T) {
	p, err := fetch.NewPlan("", []string{"a", "c"}, nil, map[string]string{"c": "d"})
	if err != nil {
		t.Fatal(err)
	}
	const in = `{"a":1,"b":2,"c":3}`
	const want = `{"a":1,"d":3}`

	t.Run("appends to dst", func(t *testing.T) {
		got, err := p.Apply([]byte("x="), []byte(in))
		if err != nil || string(got) != "x="+want {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("reused dst", func(t *testing.T) {
		buf := make([]byte, 0, 64)
		for range 3 {
			got, err := p.Apply(buf[:0], []byte(in))
			if err != nil || string(got) != want {
				t.Fatalf("got %q, %v", got, err)
			}
			buf = got
		}
	})
	t.Run("raw inside dst capacity", func(t *testing.T) {
		buf := make([]byte, 0, 64)
		buf = append(buf, in...)
		got, err := p.Apply(buf[:0], buf)
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v", got, err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		got, err := p.Apply([]byte("keep"), []byte("  \n"))
		if err == nil || errors.Is(err, fetch.ErrTargetMissing) {
			t.Fatalf("err = %v, want a non-target error", err)
		}
		if string(got) != "keep" {
			t.Errorf("dst changed on error: %q", got)
		}
	})
	t.Run("concurrent use", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				var buf []byte
				for range 100 {
					out, err := p.Apply(buf[:0], []byte(in))
					if err != nil || string(out) != want {
						t.Errorf("got %q, %v", out, err)
						return
					}
					buf = out
				}
			})
		}
		wg.Wait()
	})
}

func ExamplePlan_Apply() {
	plan, err := fetch.NewPlan("data.user", []string{"id", "name", "address.city"}, nil,
		map[string]string{"name": "fullName"})
	if err != nil {
		panic(err)
	}
	answer := []byte(`{"data":{"user":{"id":9007199254740993,"name":"Ren\u00e9","password":"x",` +
		`"address":{"city":"Lyon","zip":"69001"}}}}`)
	out, err := plan.Apply(nil, answer)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(out))
	// Output: {"id":9007199254740993,"fullName":"Ren\u00e9","address":{"city":"Lyon"}}
}
