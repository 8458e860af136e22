package demo

import (
	"net/http"
	"time"
)

// NewHandler is Handler with delay in place of the slow-instance rule, so
// tests see which delay was chosen without timing it.
func NewHandler(delay func(host string) time.Duration) http.Handler { return handler(delay) }

// SlowInstance is the rule Handler uses: the delay it picks per Host.
func SlowInstance() func(host string) time.Duration { return slowInstance() }
