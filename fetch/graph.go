package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/net/http/httpguts"

	"github.com/manifold-gw/manifold/config"
)

// fetchGraph runs an endpoint whose backends depend on each other: every
// backend gets its goroutine at once (the first runs on the caller's), and
// each waits only for its own dependencies, so a dependent starts the
// moment the last of them has answered, and independent branches run in
// parallel. done[i] is closed when results[i] is final; reading a
// dependency's result after its channel closed is ordered by the close.
func (e *Endpoint) fetchGraph(ctx context.Context, in *Inbound) []Result {
	n := e.graphSize()
	results := make([]Result, n)
	done := make([]chan struct{}, n)
	for i := range done {
		done[i] = make(chan struct{})
	}
	var first panicValue
	run := func(i int) {
		defer close(done[i])
		b := e.graphNode(i)
		if b == nil {
			return
		}
		defer first.recover(&results[i], b)
		results[i] = b.node(ctx, in, results, done)
	}
	var wg sync.WaitGroup
	for i := 1; i < n; i++ {
		if e.graphNode(i) == nil {
			run(i)
			continue
		}
		wg.Go(func() { run(i) })
	}
	run(0)
	wg.Wait()
	first.repanic()
	if e.nodes != nil {
		return dropShadowSlots(results, e.nodes)
	}
	return results
}

// errPanicked fails a graph backend whose call panicked, so that its
// dependents are skipped rather than started on a zero Result.
var errPanicked = errors.New("backend call panicked")

// panicValue keeps the first panic of a graph's goroutines. A panic in a
// goroutine of its own would kill the process, and one on the caller's
// would leave the others running past the request; instead every
// goroutine recovers, fails its backend, and the caller panics again once
// all have ended, so the handler's recoverer answers 500 as for any
// handler panic.
type panicValue struct {
	mu  sync.Mutex
	v   any
	set bool
}

// recover, deferred, turns a panic into a failed result for b.
func (p *panicValue) recover(res *Result, b *Backend) {
	r := recover()
	if r == nil {
		return
	}
	p.mu.Lock()
	if !p.set {
		p.v, p.set = r, true
	}
	p.mu.Unlock()
	*res = Result{Backend: b, Err: errPanicked}
}

// repanic panics with the first value recovered, if any.
func (p *panicValue) repanic() {
	p.mu.Lock()
	v, set := p.v, p.set
	p.mu.Unlock()
	if set {
		panic(v)
	}
}

// node runs one backend of a graph: wait for its dependencies, fill its
// references from their raw answers, then call (once, or once per foreach
// element).
func (b *Backend) node(ctx context.Context, in *Inbound, results []Result, done []chan struct{}) Result {
	for _, d := range b.Config.Deps {
		<-done[d] // a dependency's call ends by the endpoint deadline at the latest
		if results[d].Err != nil {
			res := Result{Backend: b, Err: &DependencyError{Name: results[d].Backend.Config.ID}}
			if b.trace != nil {
				b.traceSkipped(ctx, &res)
			}
			return res
		}
	}
	if b.trace != nil {
		return b.traced(ctx, func(ctx context.Context) Result { return b.run(ctx, in, results) })
	}
	return b.run(ctx, in, results)
}

// run is the rest of node once the dependencies have answered.
func (b *Backend) run(ctx context.Context, in *Inbound, results []Result) Result {
	if b.Config.ForeachRef != nil {
		return b.foreach(ctx, in, results)
	}
	vals, err := b.resolve(results, gjson.Result{})
	if err != nil {
		return Result{Backend: b, Err: err}
	}
	env, err := b.render(in, vals)
	if err != nil {
		return Result{Backend: b, Err: err}
	}
	return b.callWith(ctx, in, env)
}

// resolve finds the value of each of the backend's references: in the raw
// answer of the backend it names, or in item for {item...}.
func (b *Backend) resolve(results []Result, item gjson.Result) ([]config.RefValue, error) {
	refs := b.Config.Refs
	if len(refs) == 0 {
		return nil, nil
	}
	vals := make([]config.RefValue, len(refs))
	for i, r := range refs {
		var v gjson.Result
		if r.Source == config.ItemSource {
			v = lookup(item, r.Path)
		} else {
			v = lookup(answer(results[r.Source].raw), r.Path)
		}
		var tooMany bool
		vals[i], tooMany = refValue(v, b.Config.MaxItems)
		if tooMany {
			return nil, fmt.Errorf("%w: %s names an array of more than max_items (%d) values", ErrTooManyItems, r.Text, b.Config.MaxItems)
		}
	}
	return vals, nil
}

// answer views a dependency's raw answer for lookup, without copying it
// (a raw answer is never modified once read).
func answer(raw []byte) gjson.Result {
	if len(raw) == 0 {
		return gjson.Result{}
	}
	return gjson.Parse(reshapeStr(raw))
}

// lookup finds a reference's path (Ref.Path: segments escaped for gjson,
// joined by '.'; "" for the value itself) in v as a client decoding the
// answer sees it, the way reshape and merge compare keys: keys as decoded
// (reshapeKey), the last of duplicate keys winning at every level, a
// numeric segment indexing an array. (gjson's own paths take the first of
// duplicate keys, and look on in later duplicates for what it lacks, so a
// dependent could be called with a value its client never sees.)
func lookup(v gjson.Result, path string) gjson.Result {
	for path != "" && v.Exists() {
		var seg string
		seg, path = nextSegment(path)
		switch {
		case v.IsObject():
			var found gjson.Result
			v.ForEach(func(k, x gjson.Result) bool {
				if reshapeKey(k) == seg {
					found = x // keep scanning: the last duplicate wins
				}
				return true
			})
			v = found
		case v.IsArray():
			v = element(v, seg)
		default:
			return gjson.Result{}
		}
	}
	return v
}

// nextSegment cuts the first segment off a gjson-escaped dot path and
// unescapes it.
func nextSegment(path string) (seg, rest string) {
	var b []byte // nil until an escape is met
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case c == '\\' && i+1 < len(path):
			if b == nil {
				b = append([]byte(nil), path[:i]...)
			}
			i++
			b = append(b, path[i])
		case c == '.':
			if b != nil {
				return string(b), path[i+1:]
			}
			return path[:i], path[i+1:]
		case b != nil:
			b = append(b, c)
		}
	}
	if b != nil {
		return string(b), ""
	}
	return path, ""
}

// element is the array v's element at the decimal index seg, if any.
func element(v gjson.Result, seg string) gjson.Result {
	n, err := strconv.Atoi(seg)
	if err != nil || seg[0] < '0' || seg[0] > '9' {
		return gjson.Result{}
	}
	var found gjson.Result
	v.ForEach(func(_, x gjson.Result) bool {
		if n == 0 {
			found = x
			return false
		}
		n--
		return true
	})
	return found
}

// refValue turns a JSON value into what a reference can substitute: the
// text of a scalar (a number's exact text, a string decoded), or the texts
// of an array of at most max scalars (tooMany past that: the walk stops at
// max+1, so a huge array costs nothing to refuse). Anything else is not
// found.
func refValue(v gjson.Result, max int) (_ config.RefValue, tooMany bool) {
	if text, ok := scalarText(v); ok {
		return config.RefValue{Found: true, Text: text}, false
	}
	if !v.IsArray() {
		return config.RefValue{}, false
	}
	list := []string{}
	ok := true
	v.ForEach(func(_, x gjson.Result) bool {
		if len(list) == max {
			tooMany = true
			return false
		}
		var text string
		if text, ok = scalarText(x); !ok {
			return false
		}
		list = append(list, text)
		return true
	})
	if tooMany {
		return config.RefValue{}, true
	}
	if !ok {
		return config.RefValue{}, false
	}
	return config.RefValue{Found: true, List: list}, false
}

// scalarText is the text a scalar substitutes (a number's exact text, a
// string decoded); ok is false for anything else.
func scalarText(v gjson.Result) (string, bool) {
	switch v.Type {
	case gjson.String:
		return v.Str, true
	case gjson.Number:
		return v.Raw, true
	case gjson.True:
		return "true", true
	case gjson.False:
		return "false", true
	}
	return "", false
}

// render builds the call's request-target and headers from vals.
func (b *Backend) render(in *Inbound, vals []config.RefValue) (*callEnv, error) {
	t := b.Config.Template
	buf := make([]byte, 0, len(b.Upstream.pathPrefix)+len(b.Config.Path)+len(in.Query)+64)
	buf = append(buf, b.Upstream.pathPrefix...)
	buf, bad := t.AppendPathValues(buf, in.Params, vals)
	if bad != nil {
		return nil, &ReferenceError{Ref: bad.Text}
	}
	if t.HasQuery() || in.Query != "" {
		buf = append(buf, '?')
		mark := len(buf)
		buf, bad = t.AppendQueryValues(buf, in.Params, vals)
		if bad != nil {
			return nil, &ReferenceError{Ref: bad.Text}
		}
		if len(buf) > mark && in.Query != "" {
			buf = append(buf, '&')
		}
		buf = append(buf, in.Query...)
		if len(buf) == mark {
			buf = buf[:mark-1] // nothing after all: an empty array, no forwarded query
		}
	}
	env := &callEnv{uri: string(buf)}
	if hs := b.Config.HeaderTemplates; len(hs) > 0 {
		env.header = make(http.Header, len(hs))
		for _, h := range hs {
			v, bad := h.Render(vals)
			if bad != nil {
				return nil, &ReferenceError{Ref: bad.Text, Header: strings.ContainsAny(v, "\r\n\x00")}
			}
			if !httpguts.ValidHeaderFieldValue(v) {
				// Another control character (\x01, ESC, DEL...): the stdlib
				// client would refuse the call, the lean one send the
				// byte, and either would charge the upstream's breaker.
				if bad := b.headerCulprit(h, vals, v); bad != nil {
					return nil, &ReferenceError{Ref: bad.Text, Header: true}
				}
			}
			env.header[h.Name] = []string{v}
		}
	}
	return env, nil
}

// headerCulprit finds the reference whose value made h's rendered value v
// invalid. The literal text was validated at load, so a reference holding
// a character a header value cannot carry did: the one whose value, left
// out, changes what h renders.
func (b *Backend) headerCulprit(h *config.HeaderTemplate, vals []config.RefValue, v string) *config.Ref {
	for i, val := range vals {
		if val.List != nil || httpguts.ValidHeaderFieldValue(val.Text) {
			continue
		}
		probe := slices.Clone(vals)
		probe[i].Text = ""
		if w, _ := h.Render(probe); w != v {
			return b.Config.Refs[i]
		}
	}
	return nil
}

// foreach calls the backend once per element of its foreach array, at most
// max_parallel at a time: a worker pool of that many goroutines (the
// caller's included) taking elements in order, so no goroutine is started
// per element. Results come back in element order, as one JSON array; the
// first failed element, in order, fails the backend, and once one has
// failed no further element is started.
func (b *Backend) foreach(ctx context.Context, in *Inbound, results []Result) Result {
	start := time.Now()
	f := b.Config.ForeachRef
	arr := lookup(answer(results[f.Source].raw), f.Path)
	if !arr.IsArray() {
		return Result{Backend: b, Err: &ReferenceError{Ref: f.Text}}
	}
	// Counted while walking, so that a huge array is refused at
	// max_items+1 elements, not after a value was built for each.
	var items []gjson.Result
	tooMany := false
	arr.ForEach(func(_, x gjson.Result) bool {
		if len(items) == b.Config.MaxItems {
			tooMany = true
			return false
		}
		items = append(items, x)
		return true
	})
	if tooMany {
		return Result{Backend: b, Err: ErrTooManyItems}
	}
	if len(items) == 0 {
		res := Result{Backend: b, Body: emptyArray, Items: []Result{}, Status: http.StatusOK, Duration: time.Since(start)}
		if b.keepRaw {
			res.raw = emptyArray
		}
		return res
	}
	calls := make([]Result, len(items))
	var next atomic.Int64
	var failed atomic.Bool
	var first panicValue
	call := func(k int) (r Result) {
		defer first.recover(&r, b)
		if b.trace != nil {
			return b.tracedItem(ctx, in, results, items[k], k)
		}
		return b.item(ctx, in, results, items[k])
	}
	work := func() {
		for !failed.Load() {
			k := int(next.Add(1)) - 1
			if k >= len(items) {
				return
			}
			r := call(k)
			if r.Err != nil {
				failed.Store(true)
			}
			calls[k] = r
		}
	}
	var wg sync.WaitGroup
	for range min(b.Config.MaxParallel, len(items)) - 1 {
		wg.Go(work)
	}
	work()
	wg.Wait()
	first.repanic() // every worker has ended: up to the node's own recover

	res := Result{Backend: b, Items: calls, Duration: time.Since(start)}
	size := 2
	for i := range calls {
		c := &calls[i]
		if c.Backend == nil {
			calls = calls[:i] // never started: an earlier element failed
			res.Items = calls
			break
		}
		if c.Err != nil && res.Err == nil {
			res.Err, res.Status = c.Err, c.Status
		}
		size += len(c.Body) + 1
	}
	if res.Err != nil {
		return res
	}
	body := make([]byte, 0, size)
	body = append(body, '[')
	for i := range calls {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, calls[i].Body...)
	}
	res.Body = append(body, ']')
	res.Status = http.StatusOK
	if b.keepRaw {
		// What a dependent reads: the elements' answers as the upstream
		// sent them (each call kept its own, b being referenced), in
		// element order, before reshaping.
		raw := make([]byte, 0, size)
		raw = append(raw, '[')
		for i := range calls {
			if i > 0 {
				raw = append(raw, ',')
			}
			raw = append(raw, calls[i].raw...)
		}
		res.raw = append(raw, ']')
	}
	return res
}

var emptyArray = []byte("[]")

// item makes the call of one foreach element.
func (b *Backend) item(ctx context.Context, in *Inbound, results []Result, item gjson.Result) Result {
	vals, err := b.resolve(results, item)
	if err == nil {
		var env *callEnv
		if env, err = b.render(in, vals); err == nil {
			return b.callWith(ctx, in, env)
		}
	}
	return Result{Backend: b, Err: err}
}
