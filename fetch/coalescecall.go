package fetch

import (
	"context"
	"net/http"
	"slices"
	"strings"
)

// coalesced makes one try of a GET/HEAD call through the upstream's
// flights: an identical try already in flight is joined instead of sent.
// The shared try runs under the upstream's own timeout, not this caller's
// deadline; each caller waits for it under its own deadline and
// cancellation.
func (b *Backend) coalesced(ctx context.Context, o *outbound, avoid *instance) tryOut {
	key := b.coalesceKey(o)
	if avoid != nil {
		// A retry joins only flights that avoid the same instance: one
		// already in flight elsewhere may be on the instance that just
		// failed it.
		key += "\x00avoid " + avoid.addr
	}
	out, joined, err := b.Upstream.flights.do(ctx, key, func(ctx context.Context) tryOut {
		if b.hedge != nil {
			return b.hedged(ctx, o, avoid)
		}
		return b.fetchJSON(ctx, o, avoid)
	})
	if joined {
		call(b.Upstream.hooks.Coalesced)
	}
	if err != nil {
		return tryOut{err: classify(ctx, ctx, err)}
	}
	return out
}

// coalesceKey is what makes two tries identical: the method, the final
// request-target and every header sent but X-Request-ID and traceparent
// (names compared case-insensitively, values in order; NUL, which no
// name or value holds, separates them), plus how the
// answer is validated (its depth limit depends on where it is merged).
func (b *Backend) coalesceKey(o *outbound) string {
	names := make([]string, 0, len(o.header))
	for k := range o.header {
		if strings.EqualFold(k, "X-Request-Id") || strings.EqualFold(k, "Traceparent") {
			continue
		}
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, c string) int {
		return strings.Compare(http.CanonicalHeaderKey(a), http.CanonicalHeaderKey(c))
	})
	var sb strings.Builder
	sb.Grow(len(o.uri) + 64*len(names))
	sb.WriteString(b.Config.Method)
	sb.WriteByte(' ')
	sb.WriteString(o.uri)
	if b.perElement { // see depthLimit
		sb.WriteString(" f")
	}
	switch {
	case b.nested:
		sb.WriteString(" n")
	case b.Config.Target == "":
		sb.WriteString(" u")
	}
	for _, k := range names {
		sb.WriteByte('\n')
		sb.WriteString(http.CanonicalHeaderKey(k))
		for _, v := range o.header[k] {
			sb.WriteByte(0) // never in a name or value
			sb.WriteString(v)
		}
	}
	return sb.String()
}
