package demo_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

type orderDetail struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Customer struct {
		ID string `json:"id"`
	} `json:"customer"`
	Lang  string `json:"lang"`
	Lines []struct {
		SKU string `json:"sku"`
		Qty int    `json:"qty"`
	} `json:"lines"`
	Total    json.Number `json:"total"`
	Currency string      `json:"currency"`
	Tracking json.Number `json:"tracking"`
	PlacedAt string      `json:"placed_at"`
}

type product struct {
	SKU      string      `json:"sku"`
	Title    string      `json:"title"`
	Lang     string      `json:"lang"`
	Price    json.Number `json:"price"`
	Currency string      `json:"currency"`
}

// toCents parses a two-decimal JSON number's text exactly.
func toCents(t *testing.T, n json.Number) int64 {
	t.Helper()
	s := n.String()
	if !twoDecimals.MatchString(s) {
		t.Fatalf("%s is not a JSON number with two decimals", s)
	}
	c, err := strconv.ParseInt(strings.Replace(s, ".", "", 1), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	rawTracking = regexp.MustCompile(`"tracking":([0-9]+)[,}]`)
	rawTotal    = regexp.MustCompile(`"total":([0-9.]+)[,}]`)
)

// wantLang is the order language the demo derives from the customer's country.
func wantLang(country string) string {
	switch country {
	case "DE", "AT":
		return "de"
	case "FR", "BE":
		return "fr"
	}
	return "en"
}

// TestOrderChain walks the call graph the shipped config builds: the order,
// then its customer, the customer's recommendations, and every line's product
// (in the order's language) and inventory.
func TestOrderChain(t *testing.T) {
	srv := newServer(t)
	for _, id := range []string{"1", "3", "8", "42", "1001", "98765432109876543210", "o-1", "o-dq8hmvcf", "o-zzzzzzzzzzzzz"} {
		t.Run("id "+id, func(t *testing.T) {
			var o orderDetail
			decode(t, get(t, srv, "/orders/"+id), http.StatusOK, &o)
			if o.ID != id || o.Currency != "EUR" ||
				!slices.Contains([]string{"pending", "paid", "shipped", "delivered", "cancelled"}, o.Status) {
				t.Errorf("bad order %+v", o)
			}

			var u user
			decode(t, get(t, srv, "/users/"+o.Customer.ID), http.StatusOK, &u)
			if u.ID != o.Customer.ID {
				t.Errorf("customer %q answered as user %q", o.Customer.ID, u.ID)
			}
			if want := wantLang(u.Address.Country); o.Lang != want {
				t.Errorf("lang = %q, want %q for a customer in %s", o.Lang, want, u.Address.Country)
			}
			if r := get(t, srv, "/recommendations/"+o.Customer.ID); r.status != http.StatusOK {
				t.Errorf("recommendations for customer %s: %d %s", o.Customer.ID, r.status, r.body)
			}
			created, err1 := time.Parse(time.RFC3339, u.CreatedAt)
			placed, err2 := time.Parse(time.RFC3339, o.PlacedAt)
			if err1 != nil || err2 != nil || placed.Before(created) || placed.Year() != 2024 {
				t.Errorf("placed_at %q (%v), want an RFC 3339 time in 2024 after created_at %q", o.PlacedAt, err2, u.CreatedAt)
			}

			if len(o.Lines) < 1 || len(o.Lines) > 5 {
				t.Fatalf("%d lines, want 1..5", len(o.Lines))
			}
			seen := map[string]bool{}
			var sum int64
			for i, l := range o.Lines {
				if seen[l.SKU] || l.Qty < 1 || l.Qty > 3 {
					t.Errorf("line %d: %+v (duplicate sku or qty outside 1..3)", i, l)
				}
				seen[l.SKU] = true
				var p product
				decode(t, get(t, srv, "/products/"+l.SKU+"?lang="+o.Lang), http.StatusOK, &p)
				if p.SKU != l.SKU || p.Lang != o.Lang || p.Title == "" || p.Currency != o.Currency {
					t.Errorf("line %d: product %+v", i, p)
				}
				sum += toCents(t, p.Price) * int64(l.Qty)
				var inv struct {
					SKU   string `json:"sku"`
					Title string `json:"title"`
				}
				decode(t, get(t, srv, "/inventory/"+l.SKU), http.StatusOK, &inv)
				if inv.SKU != l.SKU || inv.Title == "" {
					t.Errorf("line %d: inventory %+v does not know the sku", i, inv)
				}
			}
			if got := toCents(t, o.Total); got != sum {
				t.Errorf("total = %s, want the lines' sum %d.%02d", o.Total, sum/100, sum%100)
			}
		})
	}
}

// TestOrderExactNumbers checks the raw text, not a decoded value: money has
// exactly two decimals and the tracking number is an integer no float64 can
// hold, written out in full.
func TestOrderExactNumbers(t *testing.T) {
	srv := newServer(t)
	for i := 1; i <= 50; i++ {
		path := fmt.Sprintf("/orders/%d", i)
		r := get(t, srv, path)
		var o orderDetail
		decode(t, r, http.StatusOK, &o)
		m := rawTracking.FindSubmatch(r.body)
		if m == nil || string(m[1]) != o.Tracking.String() {
			t.Fatalf("%s: no plain integer tracking in %s", path, r.body)
		}
		n, err := strconv.ParseUint(string(m[1]), 10, 64)
		if err != nil || n <= 1<<53 || n >= 1<<54 || n%2 == 0 {
			t.Errorf("%s: tracking %s (%v), want an odd integer in (2^53, 2^54)", path, m[1], err)
		}
		if uint64(float64(n)) == n {
			t.Errorf("%s: tracking %d survives a float64 round trip; it should not", path, n)
		}
		if m := rawTotal.FindSubmatch(r.body); m == nil || !twoDecimals.MatchString(string(m[1])) {
			t.Errorf("%s: total is not written with two decimals: %s", path, r.body)
		}
	}
}

// TestOrderLangs makes sure the demo data shows every language: among the
// first orders some are German and some French, not only English.
func TestOrderLangs(t *testing.T) {
	srv := newServer(t)
	seen := map[string]int{}
	for i := 1; i <= 30; i++ {
		var o orderDetail
		decode(t, get(t, srv, fmt.Sprintf("/orders/%d", i)), http.StatusOK, &o)
		seen[o.Lang]++
	}
	if len(seen) != 3 || seen["en"] == 0 || seen["de"] == 0 || seen["fr"] == 0 {
		t.Errorf("langs of orders 1..30 = %v, want en, de and fr", seen)
	}
}

// TestListedOrdersResolve: the ids /users/{id}/orders lists are valid
// /orders/{id} ids.
func TestListedOrdersResolve(t *testing.T) {
	srv := newServer(t)
	for _, uid := range []string{"1", "3", "42"} {
		var list orders
		decode(t, get(t, srv, "/users/"+uid+"/orders"), http.StatusOK, &list)
		for _, lo := range list.Orders {
			var o orderDetail
			decode(t, get(t, srv, "/orders/"+lo.ID), http.StatusOK, &o)
			if o.ID != lo.ID {
				t.Errorf("/orders/%s answered id %q", lo.ID, o.ID)
			}
		}
	}
}

func TestOrderNotFound(t *testing.T) {
	srv := newServer(t)
	for _, id := range []string{
		"0", "000", "bob", "-1", "1.5", "%20", "o-", "o-0", "o-000", "O-1", "o-ABC", "o-a_b",
		"o-12345678901234", // 14 base-36 digits: more than a uint64
		"o-" + url.PathEscape("é"),
	} {
		t.Run(id, func(t *testing.T) {
			wantError(t, get(t, srv, "/orders/"+id), http.StatusNotFound, "order not found")
		})
	}
}

func TestProducts(t *testing.T) {
	srv := newServer(t)
	t.Run("exact bodies", func(t *testing.T) {
		for _, tc := range []struct{ path, body string }{
			{"/products/SKU-1003", `{"sku":"SKU-1003","title":"27\" monitor","lang":"en","price":249.00,"currency":"EUR"}`},
			{"/products/SKU-1003?lang=", `{"sku":"SKU-1003","title":"27\" monitor","lang":"en","price":249.00,"currency":"EUR"}`},
			{"/products/SKU-1003?lang=en", `{"sku":"SKU-1003","title":"27\" monitor","lang":"en","price":249.00,"currency":"EUR"}`},
			{"/products/SKU-1003?lang=de", `{"sku":"SKU-1003","title":"27\"-Monitor","lang":"de","price":249.00,"currency":"EUR"}`},
			{"/products/SKU-1011?lang=fr", `{"sku":"SKU-1011","title":"Organiseur de câbles","lang":"fr","price":12.50,"currency":"EUR"}`},
		} {
			r := get(t, srv, tc.path)
			if r.status != http.StatusOK || string(r.body) != tc.body+"\n" {
				t.Errorf("%s = %d %s, want 200 %s", tc.path, r.status, r.body, tc.body)
			}
		}
	})
	for i := 1001; i <= 1012; i++ {
		sku := "SKU-" + strconv.Itoa(i)
		t.Run(sku, func(t *testing.T) {
			var inv struct {
				Title string `json:"title"`
			}
			decode(t, get(t, srv, "/inventory/"+sku), http.StatusOK, &inv)
			var price json.Number
			for _, lang := range []string{"en", "de", "fr"} {
				var p product
				decode(t, get(t, srv, "/products/"+sku+"?lang="+lang), http.StatusOK, &p)
				if p.SKU != sku || p.Lang != lang || p.Title == "" || p.Currency != "EUR" {
					t.Errorf("lang %s: bad product %+v", lang, p)
				}
				if lang == "en" && p.Title != inv.Title {
					t.Errorf("English title %q differs from inventory's %q", p.Title, inv.Title)
				}
				toCents(t, p.Price) // fails unless two decimals
				if price != "" && p.Price != price {
					t.Errorf("lang %s: price %s, want the same %s in every language", lang, p.Price, price)
				}
				price = p.Price
			}
		})
	}
	for _, tc := range []struct {
		name, path string
		status     int
		msg        string
	}{
		{"valid sku outside the catalog", "/products/widget_7.b", http.StatusNotFound, "product not found"},
		{"unknown catalog-like sku", "/products/SKU-9999", http.StatusNotFound, "product not found"},
		{"lower case", "/products/sku-1003", http.StatusNotFound, "product not found"},
		{"bad characters", "/products/a%20b", http.StatusNotFound, "product not found"},
		{"too long", "/products/" + strings.Repeat("x", 65), http.StatusNotFound, "product not found"},
		{"unsupported lang", "/products/SKU-1003?lang=es", http.StatusBadRequest, `invalid "lang": want en, de or fr`},
		{"upper-case lang", "/products/SKU-1003?lang=EN", http.StatusBadRequest, `invalid "lang": want en, de or fr`},
		{"regional lang", "/products/SKU-1003?lang=de-DE", http.StatusBadRequest, `invalid "lang": want en, de or fr`},
		{"bad lang wins over unknown sku", "/products/SKU-9999?lang=es", http.StatusBadRequest, `invalid "lang": want en, de or fr`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantError(t, get(t, srv, tc.path), tc.status, tc.msg)
		})
	}
}

// TestKnobsOnNewRoutes: ?delay=, ?fail= and ?status= work on /orders/{id}
// and /products/{sku} as on every other path, and ?lang= is not mistaken
// for a knob.
func TestKnobsOnNewRoutes(t *testing.T) {
	srv := newServer(t)
	plainOrder, plainProduct := get(t, srv, "/orders/42"), get(t, srv, "/products/SKU-1003?lang=de")
	for _, tc := range []struct {
		name, path string
		status     int
		body       string // exact body without the trailing newline
		min        time.Duration
	}{
		{"order status", "/orders/42?status=503", 503, `{"status":503,"injected":true}`, 0},
		{"order status on a missing order", "/orders/0?status=502", 502, `{"status":502,"injected":true}`, 0},
		{"order fail", "/orders/42?fail=1", 500, `{"error":"injected failure"}`, 0},
		{"order delay", "/orders/42?delay=50ms", 200, strings.TrimSuffix(string(plainOrder.body), "\n"), 50 * time.Millisecond},
		{"order status=200", "/orders/42?status=200", 200, strings.TrimSuffix(string(plainOrder.body), "\n"), 0},
		{"product status", "/products/SKU-1003?lang=de&status=429", 429, `{"status":429,"injected":true}`, 0},
		{"product fail", "/products/SKU-1003?fail=1&lang=de", 500, `{"error":"injected failure"}`, 0},
		{"product delay", "/products/SKU-1003?delay=50ms&lang=de", 200, strings.TrimSuffix(string(plainProduct.body), "\n"), 50 * time.Millisecond},
		{"bad knob before bad lang", "/products/SKU-1003?lang=es&fail=2", 400, `{"error":"invalid \"fail\": want a ratio between 0 and 1"}`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := get(t, srv, tc.path)
			if elapsed := time.Since(start); elapsed < tc.min {
				t.Errorf("answered after %v, want at least %v", elapsed, tc.min)
			}
			if r.status != tc.status || !bytes.Equal(r.body, []byte(tc.body+"\n")) {
				t.Errorf("= %d %s, want %d %s", r.status, r.body, tc.status, tc.body)
			}
		})
	}
}
