package demo

import (
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// maxDelay caps ?delay= so a typo cannot park a request for hours.
const maxDelay = 30 * time.Second

// knobs are the fault-injection settings parsed from the query string.
type knobs struct {
	delay  time.Duration // 0: no delay
	fail   float64       // probability of an injected 500
	status int           // 0: no injected status
}

// parseKnobs validates every knob up front, so a bad ?status= is reported at
// once instead of after a long ?delay=.
func parseKnobs(q url.Values) (knobs, string) {
	var k knobs
	if q.Has("delay") {
		d, err := time.ParseDuration(q.Get("delay"))
		if err != nil || d < 0 {
			return k, `invalid "delay": want a non-negative Go duration such as 250ms or 2s`
		}
		k.delay = min(d, maxDelay)
	}
	if q.Has("fail") {
		f, err := strconv.ParseFloat(q.Get("fail"), 64)
		if err != nil || math.IsNaN(f) || f < 0 || f > 1 {
			return k, `invalid "fail": want a ratio between 0 and 1`
		}
		k.fail = f
	}
	if q.Has("status") {
		s, err := strconv.Atoi(q.Get("status"))
		if err != nil || s < 100 || s > 599 {
			return k, `invalid "status": want an HTTP status code between 100 and 599`
		}
		if s == http.StatusSwitchingProtocols {
			// A 101 is final and, without a real Upgrade, leaves the
			// connection in limbo (clients hang until their timeout).
			return k, `invalid "status": 101 cannot be injected without a protocol upgrade`
		}
		k.status = s
	}
	return k, ""
}

// withKnobs applies ?delay=, ?fail= and ?status= (in that order) before
// handing the request to next:
//
//   - delay waits, but gives up as soon as the request context ends;
//   - fail answers 500 {"error":"injected failure"} with the given probability;
//   - status answers {"status":CODE,"injected":true} with that code (no body
//     for 204 and 304). status=200 is the normal answer, so it passes
//     through. A 1xx code is sent as an interim response followed by the
//     normal answer, which is what 1xx means (101 is rejected: see parseKnobs).
func withKnobs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, msg := parseKnobs(r.URL.Query())
		if msg != "" {
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		if k.delay > 0 {
			t := time.NewTimer(k.delay)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return // the client is gone; nobody reads an answer
			}
		}
		if k.fail > 0 && rand.Float64() < k.fail {
			writeError(w, http.StatusInternalServerError, "injected failure")
			return
		}
		if k.status >= 100 && k.status <= 199 {
			w.WriteHeader(k.status) // interim; net/http sends it at once
			next.ServeHTTP(w, r)
			return
		}
		if k.status != 0 && k.status != http.StatusOK {
			if k.status == http.StatusNoContent || k.status == http.StatusNotModified {
				w.WriteHeader(k.status)
				return
			}
			writeJSON(w, k.status, struct {
				Status   int  `json:"status"`
				Injected bool `json:"injected"`
			}{k.status, true})
			return
		}
		next.ServeHTTP(w, r)
	})
}
