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
	// catalog is the product list behind /recommendations, /inventory and
	// /products. title is English; de and fr are its German and French
	// titles for /products/{sku}?lang=; price is in cents (EUR).
	catalog = []struct {
		sku, title string
		price      cents
		de, fr     string
	}{
		{"SKU-1001", "Mechanical keyboard", 8990, "Mechanische Tastatur", "Clavier mécanique"},
		{"SKU-1002", "USB-C hub", 3499, "USB-C-Hub", "Hub USB-C"},
		{"SKU-1003", "27\" monitor", 24900, "27\"-Monitor", "Écran 27\""},
		{"SKU-1004", "Noise-cancelling headphones", 19900, "Kopfhörer mit Geräuschunterdrückung", "Casque à réduction de bruit"},
		{"SKU-1005", "Ergonomic mouse", 4950, "Ergonomische Maus", "Souris ergonomique"},
		{"SKU-1006", "Laptop stand", 2995, "Laptopständer", "Support pour ordinateur portable"},
		{"SKU-1007", "Webcam 1080p", 5900, "Webcam 1080p", "Webcam 1080p"},
		{"SKU-1008", "Desk lamp", 2490, "Schreibtischlampe", "Lampe de bureau"},
		{"SKU-1009", "Standing desk mat", 3900, "Steharbeitsmatte", "Tapis pour bureau debout"},
		{"SKU-1010", "Portable SSD 1TB", 11900, "Tragbare SSD 1 TB", "SSD portable 1 To"},
		{"SKU-1011", "Cable organiser", 1250, "Kabelorganizer", "Organiseur de câbles"},
		{"SKU-1012", "Coffee mug \"It works on my machine\"", 999, "Kaffeebecher „It works on my machine“", "Mug « It works on my machine »"},
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

// pickCatalog returns n (at most len(catalog)) distinct catalog indexes
// chosen by a hash-driven partial Fisher-Yates shuffle keyed by salt and id.
func pickCatalog(n int, salt, id string) []int {
	idx := make([]int, len(catalog))
	for i := range idx {
		idx[i] = i
	}
	for i := range n {
		j := i + pick(len(idx)-i, salt, id, strconv.Itoa(i))
		idx[i], idx[j] = idx[j], idx[i]
	}
	return idx[:n]
}

// makeRecommendations picks 3 distinct catalog entries and gives them
// strictly decreasing scores.
func makeRecommendations(id string) recommendationList {
	const n = 3
	items := make([]recommendation, n)
	score := 80 + pick(20, "score", id) // hundredths: 0.80 .. 0.99
	for i, ci := range pickCatalog(n, "rec", id) {
		p := catalog[ci]
		items[i] = recommendation{SKU: p.sku, Title: p.title, Score: float64(score) / 100}
		score -= 1 + pick(12, "score-step", id, strconv.Itoa(i))
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

// validOrderID reports whether an order with this id "exists": either a
// valid user-style id (a run of ASCII digits, not all zero) or "o-" followed
// by 1..13 characters of [0-9a-z], not all '0' (13 base-36 digits hold any
// uint64, and the ids /users/{id}/orders lists have this form). Everything
// else is a 404, so a missing order can be shown with /orders/0 or /orders/o-0.
func validOrderID(id string) bool {
	rest, ok := strings.CutPrefix(id, "o-")
	if !ok {
		return validUserID(id)
	}
	if rest == "" || len(rest) > 13 {
		return false
	}
	nonzero := false
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c >= '1' && c <= '9', c >= 'a' && c <= 'z':
			nonzero = true
		case c == '0':
		default:
			return false
		}
	}
	return nonzero
}

// orderStatuses are the values of an order's "status".
var orderStatuses = []string{"pending", "paid", "shipped", "delivered", "cancelled"}

// countryLang is the language an order is placed in, from its customer's
// country; any other country orders in English.
var countryLang = map[string]string{"DE": "de", "AT": "de", "FR": "fr", "BE": "fr"}

type customerRef struct {
	ID string `json:"id"`
}

type orderLine struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

// orderDetail is the /orders/{id} answer: the order a call graph starts
// from. Customer.ID is a valid /users/{id}, every line's SKU is a catalog
// entry known to /products/{sku} and /inventory/{sku}, and Total is the sum of
// those products' prices times their quantities.
type orderDetail struct {
	ID       string      `json:"id"`
	Status   string      `json:"status"`
	Customer customerRef `json:"customer"`
	Lang     string      `json:"lang"`
	Lines    []orderLine `json:"lines"`
	Total    cents       `json:"total"`
	Currency string      `json:"currency"`
	Tracking uint64      `json:"tracking"`
	PlacedAt string      `json:"placed_at"`
}

// Tracking numbers are odd integers in (2^53, 2^54): no float64 can hold
// one exactly (the spacing there is 2), so a consumer that decodes the body
// into float64 and re-encodes it changes the number's text.
const trackingBase = 1<<53 + 1

func makeOrderDetail(id string) orderDetail {
	cust := makeUser(strconv.Itoa(1 + pick(1000, "order-customer", id)))
	lang := countryLang[cust.Address.Country]
	if lang == "" {
		lang = "en"
	}
	picked := pickCatalog(1+pick(5, "order-lines", id), "order-line", id)
	lines := make([]orderLine, len(picked))
	var total cents
	for i, ci := range picked {
		p := catalog[ci]
		lines[i] = orderLine{SKU: p.sku, Qty: 1 + pick(3, "order-qty", id, strconv.Itoa(i))}
		total += p.price * cents(lines[i].Qty)
	}
	// Placed after the customer signed up, before the end of 2024.
	created, _ := time.Parse(time.RFC3339, cust.CreatedAt)
	span := uint64(epoch.AddDate(1, 0, 0).Sub(created) / time.Second)
	placed := created.Add(time.Duration(hash("order-placed", id)%span) * time.Second)
	return orderDetail{
		ID:       id,
		Status:   orderStatuses[pick(len(orderStatuses), "order-status", id)],
		Customer: customerRef{ID: cust.ID},
		Lang:     lang,
		Lines:    lines,
		Total:    total,
		Currency: "EUR",
		Tracking: trackingBase + 2*(hash("order-tracking", id)%(1<<52)),
		PlacedAt: placed.Format(time.RFC3339),
	}
}

// productLangs are the ?lang= values /products/{sku} accepts; en is the
// default.
var productLangs = []string{"en", "de", "fr"}

type product struct {
	SKU      string `json:"sku"`
	Title    string `json:"title"`
	Lang     string `json:"lang"`
	Price    cents  `json:"price"`
	Currency string `json:"currency"`
}

// makeProduct returns the catalog entry for sku with its title in lang (one
// of productLangs), or false when the catalog has no such sku.
func makeProduct(sku, lang string) (product, bool) {
	for _, p := range catalog {
		if p.sku != sku {
			continue
		}
		title := p.title
		switch lang {
		case "de":
			title = p.de
		case "fr":
			title = p.fr
		}
		return product{SKU: sku, Title: title, Lang: lang, Price: p.price, Currency: "EUR"}, true
	}
	return product{}, false
}
