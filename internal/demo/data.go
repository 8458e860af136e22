package demo

import (
	"hash/fnv"
	"strconv"
	"strings"
	"time"
)

// Fixed vocabularies; values are picked from them by hash so answers are
// stable across runs, processes and machines.
var (
	firstNames = []string{
		"Ada", "Alan", "Grace", "Linus", "Barbara", "Dennis", "Margaret", "Ken",
		"Frances", "Edsger", "Radia", "Niklaus", "Hedy", "Donald", "Sophie", "Tim",
	}
	lastNames = []string{
		"Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Ritchie", "Hamilton", "Thompson",
		"Allen", "Dijkstra", "Perlman", "Wirth", "Lamarr", "Knuth", "Wilson", "Berners-Lee",
	}
	places = []struct{ city, country string }{
		{"Amsterdam", "NL"}, {"Berlin", "DE"}, {"Lisbon", "PT"}, {"Paris", "FR"},
		{"Madrid", "ES"}, {"Vienna", "AT"}, {"Dublin", "IE"}, {"Helsinki", "FI"},
		{"Prague", "CZ"}, {"Milan", "IT"}, {"Brussels", "BE"}, {"Copenhagen", "DK"},
	}
	catalog = []struct{ sku, title string }{
		{"SKU-1001", "Mechanical keyboard"},
		{"SKU-1002", "USB-C hub"},
		{"SKU-1003", "27\" monitor"},
		{"SKU-1004", "Noise-cancelling headphones"},
		{"SKU-1005", "Ergonomic mouse"},
		{"SKU-1006", "Laptop stand"},
		{"SKU-1007", "Webcam 1080p"},
		{"SKU-1008", "Desk lamp"},
		{"SKU-1009", "Standing desk mat"},
		{"SKU-1010", "Portable SSD 1TB"},
		{"SKU-1011", "Cable organiser"},
		{"SKU-1012", "Coffee mug \"It works on my machine\""},
	}
	warehouses = []string{"AMS-1", "FRA-2", "DUB-1", "MAD-3"}
)

// epoch is the start of the created_at range (all of 2024, a leap year).
var epoch = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// hash returns FNV-1a over parts, NUL-separated so ("ab","c") != ("a","bc"),
// followed by the MurmurHash3 finaliser: plain FNV barely changes its output
// when only the last byte differs, which made ids for "42"/"43" look alike.
// Each use passes a distinct salt as its first part so derived values are
// independent of each other.
func hash(parts ...string) uint64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func pick(n int, parts ...string) int { return int(hash(parts...) % uint64(n)) }

// validUserID reports whether a user with this id "exists": a non-empty run
// of ASCII digits that is not zero. Everything else is a 404, so a missing
// user can be demonstrated with /users/0 or /users/nobody.
func validUserID(id string) bool {
	nonzero := false
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c < '0' || c > '9' {
			return false
		}
		if c != '0' {
			nonzero = true
		}
	}
	return nonzero
}

// validSKU accepts 1..64 characters of [A-Za-z0-9._-].
func validSKU(sku string) bool {
	if sku == "" || len(sku) > 64 {
		return false
	}
	for i := 0; i < len(sku); i++ {
		c := sku[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

type address struct {
	City    string `json:"city"`
	Country string `json:"country"`
}

type user struct {
	ID        string  `json:"id"`
	Name      string  `json:"name"`
	Email     string  `json:"email"`
	Address   address `json:"address"`
	CreatedAt string  `json:"created_at"`
}

func makeUser(id string) user {
	first := firstNames[pick(len(firstNames), "first", id)]
	last := lastNames[pick(len(lastNames), "last", id)]
	place := places[pick(len(places), "place", id)]
	secs := hash("created", id) % (366 * 24 * 60 * 60)
	return user{
		ID:        id,
		Name:      first + " " + last,
		Email:     strings.ToLower(first+"."+last) + "+" + id + "@example.com",
		Address:   address{City: place.city, Country: place.country},
		CreatedAt: epoch.Add(time.Duration(secs) * time.Second).Format(time.RFC3339),
	}
}

// cents is a money amount that marshals as a JSON number with exactly two
// decimals (1234.50, not 1234.5), as a real billing upstream would.
type cents int64

func (c cents) MarshalJSON() ([]byte, error) {
	b := strconv.AppendInt(nil, int64(c/100), 10)
	frac := int64(c % 100)
	b = append(b, '.', byte('0'+frac/10), byte('0'+frac%10))
	return b, nil
}

type order struct {
	ID       string `json:"id"`
	Total    cents  `json:"total"`
	Currency string `json:"currency"`
	Items    int    `json:"items"`
}

type orderList struct {
	UserID string  `json:"user_id"`
	Orders []order `json:"orders"`
	Count  int     `json:"count"`
}

func makeOrders(id string) orderList {
	n := 1 + pick(4, "orders", id)
	orders := make([]order, n)
	for i := range orders {
		k := strconv.Itoa(i)
		orders[i] = order{
			ID:       "o-" + strconv.FormatUint(hash("order-id", id, k)%(1<<40), 36),
			Total:    cents(500 + hash("order-total", id, k)%150000), // 5.00 .. 1504.99
			Currency: "EUR",
			Items:    1 + pick(5, "order-items", id, k),
		}
	}
	return orderList{UserID: id, Orders: orders, Count: n}
}

type recommendation struct {
	SKU   string  `json:"sku"`
	Title string  `json:"title"`
	Score float64 `json:"score"`
}

type recommendationList struct {
	UserID string           `json:"user_id"`
	Items  []recommendation `json:"items"`
}

// makeRecommendations picks 3 distinct catalog entries with a hash-driven
// partial Fisher-Yates shuffle and gives them strictly decreasing scores.
func makeRecommendations(id string) recommendationList {
	const n = 3
	idx := make([]int, len(catalog))
	for i := range idx {
		idx[i] = i
	}
	items := make([]recommendation, n)
	score := 80 + pick(20, "score", id) // hundredths: 0.80 .. 0.99
	for i := range items {
		k := strconv.Itoa(i)
		j := i + pick(len(idx)-i, "rec", id, k)
		idx[i], idx[j] = idx[j], idx[i]
		p := catalog[idx[i]]
		items[i] = recommendation{SKU: p.sku, Title: p.title, Score: float64(score) / 100}
		score -= 1 + pick(12, "score-step", id, k)
	}
	return recommendationList{UserID: id, Items: items}
}

type inventory struct {
	SKU       string `json:"sku"`
	Title     string `json:"title,omitempty"`
	Quantity  int    `json:"quantity"`
	InStock   bool   `json:"in_stock"`
	Warehouse string `json:"warehouse"`
}

func makeInventory(sku string) inventory {
	inv := inventory{
		SKU:       sku,
		Quantity:  pick(50, "stock", sku), // 0 happens: out-of-stock is demonstrable
		Warehouse: warehouses[pick(len(warehouses), "warehouse", sku)],
	}
	inv.InStock = inv.Quantity > 0
	for _, p := range catalog {
		if p.sku == sku {
			inv.Title = p.title
			break
		}
	}
	return inv
}
