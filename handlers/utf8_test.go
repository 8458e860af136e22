package handlers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"unicode/utf8"
)

// Every merged answer is application/json; charset=utf-8, so invalid
// UTF-8 in an upstream's strings (Latin-1 text, a cut multi-byte
// sequence) reaches the client as U+FFFD, one per invalid byte as
// encoding/json decodes it, never as the raw bytes a strict client
// refuses. Valid multi-byte text is kept byte for byte.
func TestMergedAnswerIsValidUTF8(t *testing.T) {
	t.Parallel()
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{\"name\":\"caf\xe9\",\"cut\":\"\xe2\x82\",\"ok\":\"\u20ac\xc3\xa4\",\"k\xff\":1}")
	})
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends:
      - {upstream: u, path: /x}
      - {upstream: u, path: /x, group: g, allow: [name]}
`, map[string]string{"u": up})
	a := get(t, base+"/e")
	if a.status != http.StatusOK {
		t.Fatalf("status %d: %s", a.status, a.body)
	}
	if !utf8.Valid(a.body) {
		t.Fatalf("200 %q with Content-Type %q is not UTF-8", a.body, a.header.Get("Content-Type"))
	}
	var got map[string]any
	if err := json.Unmarshal(a.body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"name": "caf\uFFFD", "cut": "\uFFFD\uFFFD", "ok": "€ä", "k\uFFFD": float64(1), "g": map[string]any{"name": "caf\uFFFD"}}
	for k, v := range want {
		if g, ok := got[k]; !ok || !equalJSONValue(g, v) {
			t.Errorf("%q = %#v, want %#v (answer %s)", k, got[k], v, a.body)
		}
	}
}

func equalJSONValue(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// A reference reads the upstream's own bytes: a Latin-1 id goes to the
// dependent call as the upstream wrote it (caf%E9), not as the U+FFFD the
// client's answer carries, so the lookup names the same resource.
func TestReferenceKeepsUpstreamBytes(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	up := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/first" {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, "{\"id\":\"caf\xe9\"}")
			return
		}
		rec.handler(`{}`)(w, r)
	})
	base := gateway(t, `
upstreams:
  u: {url: "{{u}}"}
endpoints:
  - path: /e
    backends:
      - {name: first, upstream: u, path: /first}
      - {upstream: u, path: "/second/{first.id}", group: g}
`, map[string]string{"u": up})
	a := get(t, base+"/e")
	if a.status != http.StatusOK || !utf8.Valid(a.body) {
		t.Fatalf("status %d: %q", a.status, a.body)
	}
	if got := rec.last(t).EscapedURI; got != "/second/caf%E9" {
		t.Errorf("dependent call got %s, want /second/caf%%E9 (the upstream's own bytes)", got)
	}
}
