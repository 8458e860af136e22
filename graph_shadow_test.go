package main

import "testing"

// manifold graph shows a shadow backend where it is sent (with the
// independent backends, as the fan-out starts) and says what it is.
func TestCLIGraphShadow(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, t.TempDir(), "g.yaml", `
upstreams:
  orders: {url: http://orders.internal}
  orders-v2: {url: http://orders-v2.internal}
  users: {url: http://users.internal}
endpoints:
  - path: /api/orders/{id}
    backends:
      - {upstream: orders, path: "/orders/{id}", group: order}
      - {upstream: orders-v2, path: "/orders/{id}", group: order, shadow: true}
      - {upstream: users, path: "/users/{order.customer.id}", group: customer}
`)
	for _, tc := range []struct{ format, want string }{
		{"text", `GET /api/orders/{id}  (timeout 3s)
  stage 1  order     GET orders /orders/{id}
           order     GET orders-v2 /orders/{id}            shadow: a copy, sent off the request path, answer discarded
  stage 2  customer  GET users /users/{order.customer.id}  after order
`},
		{"dot", `digraph manifold {
  rankdir=LR;
  node [shape=box];
  subgraph cluster_0 {
    label="GET /api/orders/{id}";
    e0b0 [label="order\nGET orders /orders/{id}"];
    e0b1 [label="order\nGET orders-v2 /orders/{id}\nshadow"];
    e0b2 [label="customer\nGET users /users/{order.customer.id}"];
  }
  e0b0 -> e0b2;
}
`},
	} {
		code, stdout, stderr := runCLI("graph", "-c", cfg, "--format", tc.format)
		if code != 0 || stdout != tc.want {
			t.Errorf("%s: exit %d\nstdout:\n%s\nwant:\n%s\nstderr: %s", tc.format, code, stdout, tc.want, stderr)
		}
	}
}
