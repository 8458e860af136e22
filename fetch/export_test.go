package fetch

// CoalesceWaiters is how many callers wait on u's coalesced calls in
// flight, for tests that must know when calls have joined.
func CoalesceWaiters(u *Upstream) int {
	u.flights.mu.Lock()
	defer u.flights.mu.Unlock()
	n := 0
	for _, f := range u.flights.m {
		n += f.waiters
	}
	return n
}
