package handlers

import (
	"errors"

	"github.com/manifold-gw/manifold/config"
)

// errUnserved is returned by New for a config that asks for a feature this
// build validates but does not serve yet. Serving such a file as if the
// keys were absent would be worse than refusing it: an endpoint that asks
// for auth must never answer without checking the token.
var errUnserved = errors.New("not served by this build")

// unserved names the first key of cfg whose feature is not served yet, or
// "" when every key it uses is served.
func unserved(*config.Config) string {
	return ""
}
