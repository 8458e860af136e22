package demo_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

type user struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Address struct {
		City    string `json:"city"`
		Country string `json:"country"`
	} `json:"address"`
	CreatedAt string `json:"created_at"`
}

func TestDeterminism(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, path, other string
	}{
		{"users", "/users/42", "/users/43"},
		{"orders", "/orders?user=42", "/orders?user=43"},
		{"user orders", "/users/42/orders", "/users/43/orders"},
		{"recommendations", "/recommendations/42", "/recommendations/43"},
		{"inventory", "/inventory/SKU-1001", "/inventory/SKU-1002"},
		{"order", "/orders/42", "/orders/43"},
		{"order o-id", "/orders/o-dq8hmvcf", "/orders/o-dq8hmvcg"},
		{"product", "/products/SKU-1003", "/products/SKU-1004"},
		{"product lang", "/products/SKU-1003?lang=fr", "/products/SKU-1003?lang=de"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, c := get(t, srv, tc.path), get(t, srv, tc.path), get(t, srv, tc.other)
			for _, r := range []reply{a, b, c} {
				if r.status != http.StatusOK {
					t.Fatalf("status = %d; body %s", r.status, r.body)
				}
			}
			if !bytes.Equal(a.body, b.body) {
				t.Errorf("same id, different bodies:\n%s\n%s", a.body, b.body)
			}
			if bytes.Equal(a.body, c.body) {
				t.Errorf("%s and %s gave identical bodies: %s", tc.path, tc.other, a.body)
			}
		})
	}
	t.Run("fresh handler gives the same answer", func(t *testing.T) {
		a := get(t, srv, "/users/42")
		b := get(t, newServer(t), "/users/42")
		if !bytes.Equal(a.body, b.body) {
			t.Errorf("bodies differ across handlers:\n%s\n%s", a.body, b.body)
		}
	})
}

func TestUsers(t *testing.T) {
	srv := newServer(t)
	for _, id := range []string{"1", "42", "1000", "98765432109876543210"} {
		t.Run("id "+id, func(t *testing.T) {
			var u user
			decode(t, get(t, srv, "/users/"+id), http.StatusOK, &u)
			if u.ID != id || u.Name == "" || !strings.Contains(u.Email, "@") ||
				u.Address.City == "" || u.Address.Country == "" {
				t.Errorf("incomplete user: %+v", u)
			}
			ts, err := time.Parse(time.RFC3339, u.CreatedAt)
			if err != nil || ts.Year() != 2024 {
				t.Errorf("created_at = %q (%v), want an RFC 3339 time in 2024", u.CreatedAt, err)
			}
		})
	}
	for _, id := range []string{"0", "000", "bob", "4x2", "-1", "%20"} {
		t.Run("missing "+id, func(t *testing.T) {
			wantError(t, get(t, srv, "/users/"+id), http.StatusNotFound, "user not found")
		})
	}
}

type orders struct {
	UserID string `json:"user_id"`
	Orders []struct {
		ID       string      `json:"id"`
		Total    json.Number `json:"total"`
		Currency string      `json:"currency"`
		Items    int         `json:"items"`
	} `json:"orders"`
	Count int `json:"count"`
}

var twoDecimals = regexp.MustCompile(`^[1-9][0-9]*\.[0-9]{2}$`)

func TestOrders(t *testing.T) {
	srv := newServer(t)
	for _, id := range []string{"1", "2", "3", "42", "77", "123456"} {
		t.Run("id "+id, func(t *testing.T) {
			byQuery, byPath := get(t, srv, "/orders?user="+id), get(t, srv, "/users/"+id+"/orders")
			if !bytes.Equal(byQuery.body, byPath.body) {
				t.Fatalf("the two order paths disagree:\n%s\n%s", byQuery.body, byPath.body)
			}
			var o orders
			decode(t, byQuery, http.StatusOK, &o)
			if o.UserID != id || o.Count != len(o.Orders) || o.Count < 1 || o.Count > 4 {
				t.Fatalf("user_id=%q count=%d len=%d", o.UserID, o.Count, len(o.Orders))
			}
			for _, ord := range o.Orders {
				if !strings.HasPrefix(ord.ID, "o-") || ord.Currency != "EUR" || ord.Items < 1 {
					t.Errorf("bad order %+v", ord)
				}
				if !twoDecimals.MatchString(ord.Total.String()) {
					t.Errorf("total %s is not a JSON number with two decimals", ord.Total)
				}
			}
		})
	}
	for _, tc := range []struct {
		name, path string
		status     int
		msg        string
	}{
		{"query user 0", "/orders?user=0", http.StatusNotFound, "user not found"},
		{"path user 0", "/users/0/orders", http.StatusNotFound, "user not found"},
		{"non-numeric", "/orders?user=bob", http.StatusNotFound, "user not found"},
		{"empty user", "/orders?user=", http.StatusNotFound, "user not found"},
		{"no user", "/orders", http.StatusBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, get(t, srv, tc.path), tc.status, tc.msg)
		})
	}
}

func TestRecommendations(t *testing.T) {
	srv := newServer(t)
	for _, id := range []string{"1", "42", "999"} {
		t.Run("id "+id, func(t *testing.T) {
			var rec struct {
				UserID string `json:"user_id"`
				Items  []struct {
					SKU   string  `json:"sku"`
					Title string  `json:"title"`
					Score float64 `json:"score"`
				} `json:"items"`
			}
			decode(t, get(t, srv, "/recommendations/"+id), http.StatusOK, &rec)
			if rec.UserID != id || len(rec.Items) != 3 {
				t.Fatalf("user_id=%q items=%d, want %q and 3", rec.UserID, len(rec.Items), id)
			}
			seen := map[string]bool{}
			for i, it := range rec.Items {
				if it.SKU == "" || it.Title == "" || seen[it.SKU] {
					t.Errorf("item %d: %+v (empty or duplicate)", i, it)
				}
				seen[it.SKU] = true
				if it.Score <= 0 || it.Score > 1 || (i > 0 && it.Score >= rec.Items[i-1].Score) {
					t.Errorf("item %d: score %v not in (0,1] or not decreasing", i, it.Score)
				}
				// Every recommended sku is a known inventory item.
				var inv struct {
					SKU   string `json:"sku"`
					Title string `json:"title"`
				}
				decode(t, get(t, srv, "/inventory/"+it.SKU), http.StatusOK, &inv)
				if inv.SKU != it.SKU || inv.Title != it.Title {
					t.Errorf("inventory %+v does not match recommendation %+v", inv, it)
				}
			}
		})
	}
	t.Run("missing user", func(t *testing.T) {
		wantError(t, get(t, srv, "/recommendations/0"), http.StatusNotFound, "user not found")
	})
}

func TestInventory(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, sku string
		status    int
	}{
		{"catalog sku", "SKU-1003", http.StatusOK},
		{"unknown but valid sku", "widget_7.b", http.StatusOK},
		{"bad characters", "a%20b", http.StatusNotFound},
		{"too long", strings.Repeat("x", 65), http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := get(t, srv, "/inventory/"+tc.sku)
			if tc.status != http.StatusOK {
				wantError(t, r, tc.status, "sku not found")
				return
			}
			var inv struct {
				SKU       string `json:"sku"`
				Quantity  int    `json:"quantity"`
				InStock   bool   `json:"in_stock"`
				Warehouse string `json:"warehouse"`
			}
			decode(t, r, http.StatusOK, &inv)
			if inv.SKU != tc.sku || inv.Warehouse == "" || inv.InStock != (inv.Quantity > 0) {
				t.Errorf("bad inventory %+v", inv)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	srv := newServer(t)
	r := get(t, srv, "/status")
	var s struct {
		Service string `json:"service"`
		OK      bool   `json:"ok"`
	}
	decode(t, r, http.StatusOK, &s)
	if s.Service != "demo" || !s.OK {
		t.Errorf("status = %s", r.body)
	}
}

func TestEcho(t *testing.T) {
	srv := newServer(t)
	type echoed struct {
		Method  string            `json:"method"`
		Body    json.RawMessage   `json:"body"`
		Headers map[string]string `json:"headers"`
	}
	for _, tc := range []struct {
		name, method string
		body         string
		header       http.Header
		wantBody     string // compact JSON
		wantHeaders  map[string]string
	}{
		{
			name: "json object", method: http.MethodPost,
			body: `{"hello": "world", "n": [1, 2]}`,
			header: http.Header{
				"Content-Type":      {"application/json"},
				"X-Request-Id":      {"req-1"},
				"X-Forwarded-For":   {"10.0.0.1"},
				"X-Forwarded-Host":  {"api.example.com"},
				"X-Forwarded-Proto": {"https"},
				"Authorization":     {"Bearer secret"}, // not reflected
			},
			wantBody: `{"hello":"world","n":[1,2]}`,
			wantHeaders: map[string]string{
				"Content-Type":      "application/json",
				"X-Request-Id":      "req-1",
				"X-Forwarded-For":   "10.0.0.1",
				"X-Forwarded-Host":  "api.example.com",
				"X-Forwarded-Proto": "https",
			},
		},
		{
			name: "text body", method: http.MethodPut, body: "plain <text>",
			header:      http.Header{"Content-Type": {"text/plain"}},
			wantBody:    `"plain \u003ctext\u003e"`,
			wantHeaders: map[string]string{"Content-Type": "text/plain"},
		},
		{
			name: "json scalar", method: http.MethodPatch, body: "17",
			wantBody: `17`, wantHeaders: map[string]string{},
		},
		{
			name: "empty body", method: http.MethodDelete,
			header:      http.Header{"X-Request-Id": {"r-2"}},
			wantBody:    `""`,
			wantHeaders: map[string]string{"X-Request-Id": "r-2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			var e echoed
			decode(t, do(t, srv, tc.method, "/echo", body, tc.header), http.StatusOK, &e)
			if e.Method != tc.method {
				t.Errorf("method = %q, want %q", e.Method, tc.method)
			}
			if string(e.Body) != tc.wantBody {
				t.Errorf("body = %s, want %s", e.Body, tc.wantBody)
			}
			if len(e.Headers) != len(tc.wantHeaders) {
				t.Errorf("headers = %v, want %v", e.Headers, tc.wantHeaders)
			}
			for k, v := range tc.wantHeaders {
				if e.Headers[k] != v {
					t.Errorf("header %s = %q, want %q", k, e.Headers[k], v)
				}
			}
		})
	}
	t.Run("body over 1 MiB", func(t *testing.T) {
		// Exactly one byte over: the handler consumes the whole body before
		// refusing it, so the client never races a closed connection.
		big := bytes.Repeat([]byte("a"), 1<<20+1)
		wantError(t, do(t, srv, http.MethodPost, "/echo", big, nil), http.StatusRequestEntityTooLarge, "")
	})
	t.Run("body of exactly 1 MiB", func(t *testing.T) {
		var e echoed
		decode(t, do(t, srv, http.MethodPost, "/echo", bytes.Repeat([]byte("a"), 1<<20), nil), http.StatusOK, &e)
		if len(e.Body) != 1<<20+2 {
			t.Errorf("echoed body has %d bytes, want the 1 MiB string", len(e.Body))
		}
	})
}

func TestRouting(t *testing.T) {
	srv := newServer(t)
	for _, tc := range []struct {
		name, method, path string
		status             int
		allow              string
	}{
		{"unknown path", http.MethodGet, "/nope", http.StatusNotFound, ""},
		{"root", http.MethodGet, "/", http.StatusNotFound, ""},
		{"trailing slash", http.MethodGet, "/users/42/", http.StatusNotFound, ""},
		{"POST on users", http.MethodPost, "/users/42", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"GET on echo", http.MethodGet, "/echo", http.StatusMethodNotAllowed, "POST, PUT, PATCH, DELETE"},
		{"DELETE on status", http.MethodDelete, "/status", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"POST on order", http.MethodPost, "/orders/42", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"PUT on product", http.MethodPut, "/products/SKU-1003", http.StatusMethodNotAllowed, "GET, HEAD"},
		{"empty order id", http.MethodGet, "/orders/", http.StatusNotFound, ""},
		{"below an order", http.MethodGet, "/orders/42/lines", http.StatusNotFound, ""},
		{"empty sku", http.MethodGet, "/products/", http.StatusNotFound, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, tc.method, tc.path, nil, nil)
			wantError(t, r, tc.status, "")
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
		})
	}
}
