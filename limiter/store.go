package limiter

import "context"

// Store is what a transport holds for an endpoint whose limit may live
// elsewhere than in this process: it decides one request for key, bounded
// by ctx (pass the request's context). A nil error means the Decision is
// the store's own; a non-nil error means the store could not decide, and
// the Decision returned with it is the endpoint's fallback (see
// [Redis.AllowContext]), still to be applied. Implementations are safe for
// concurrent use.
type Store interface {
	AllowContext(ctx context.Context, key string) (Decision, error)
}

// LocalStore adapts a local [Limiter] ([Global] or [PerKey]) to [Store], so
// that a transport can treat local and Redis limits alike. Its decisions
// never fail and ignore ctx.
func LocalStore(l Limiter) Store { return localStore{l} }

type localStore struct{ l Limiter }

func (s localStore) AllowContext(_ context.Context, key string) (Decision, error) {
	return s.l.Allow(key), nil
}
