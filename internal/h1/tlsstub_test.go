package h1

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"hash"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// stubCert is a self-signed certificate for "upstream.test" and 127.0.0.1,
// with its pool and PEM forms (for nginx).
type stubCert struct {
	cert            tls.Certificate
	roots           *x509.CertPool
	certPEM, keyPEM []byte
}

var testCert = sync.OnceValues(func() (*stubCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "upstream.test"},
		DNSNames:     []string{"upstream.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return &stubCert{
		cert:    tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		roots:   roots,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}, nil
})

func mustCert(t testing.TB) *stubCert {
	t.Helper()
	sc, err := testCert()
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// clientTLS is the client side of the stubs (and of nginx): it trusts the
// stub certificate; version 0 means crypto/tls's default (TLS 1.3).
func clientTLS(t testing.TB, version uint16) *tls.Config {
	cfg := &tls.Config{RootCAs: mustCert(t).roots, ServerName: "upstream.test"}
	if version != 0 {
		cfg.MinVersion, cfg.MaxVersion = version, version
	}
	return cfg
}

// tlsConn is one server-side connection of a TLS stub: tc is the TLS layer,
// raw the socket under it (to write bytes that are not TLS), rs the record
// resealer between them (to add records of the stub's own).
type tlsConn struct {
	tc  *tls.Conn
	br  *bufio.Reader
	raw net.Conn
	rs  *resealer
	n   int // accept order, 0-based
}

// newTLSServer is a loopback TLS server (certificate from testCert) whose
// connections are handled by hand, with a resealer under each.
func newTLSServer(t *testing.T, handle func(*tlsConn)) *rawServer {
	t.Helper()
	sc := mustCert(t)
	return newRawServer(t, func(rc *rawConn) {
		rs := &resealer{Conn: rc.Conn}
		cfg := &tls.Config{Certificates: []tls.Certificate{sc.cert}, KeyLogWriter: writerFunc(rs.keyLog)}
		tc := tls.Server(rs, cfg)
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
		handle(&tlsConn{tc: tc, br: bufio.NewReader(tc), raw: rc.Conn, rs: rs, n: rc.n})
	})
}

func (c *tlsConn) readRequest() (*http.Request, error) {
	c.tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer c.tc.SetReadDeadline(time.Time{})
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return nil, err
	}
	_, err = c.br.Discard(int(req.ContentLength))
	return req, err
}

func (c *tlsConn) write(s string) error {
	c.tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.tc.Write([]byte(s))
	return err
}

// waitClosed waits, reading the raw socket, until the client closes it.
func (c *tlsConn) waitClosed(limit time.Duration) error {
	c.raw.SetReadDeadline(time.Now().Add(limit))
	buf := make([]byte, 4096)
	for {
		if _, err := c.raw.Read(buf); err != nil {
			if errors.Is(err, net.ErrClosed) || isConnLoss(err) {
				return nil
			}
			return err
		}
	}
}

// resealer sits under a server-side tls.Conn and lets a stub send TLS 1.3
// records that crypto/tls's server cannot produce on demand, such as a
// NewSessionTicket or a KeyUpdate while the connection is idle. It learns
// the server's application traffic secret from the key log, and re-seals
// every application-traffic record the tls.Conn writes under the record
// sequence number (and key) the client expects, so that records of its own
// can be slipped in between. Records under the handshake secret pass as
// they are (they do not open with the application key). AES-GCM suites
// only; a stub that injects checks the suite first (injectable).
//
// hold and flush gather what the tls.Conn writes into one socket write,
// so that several records reach the client in one segment.
type resealer struct {
	net.Conn
	mu      sync.Mutex
	secret  []byte // SERVER_TRAFFIC_SECRET_0
	in, out *trafficKey
	pending []byte // a record written in part
	holding bool
	held    []byte
}

// trafficKey is one direction's AEAD state for TLS 1.3 records.
type trafficKey struct {
	secret []byte
	hash   func() hash.Hash
	keyLen int
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func newTrafficKey(secret []byte, h func() hash.Hash, keyLen int) *trafficKey {
	k := &trafficKey{secret: secret, hash: h, keyLen: keyLen}
	key := expandLabel(h, secret, "key", keyLen)
	k.iv = expandLabel(h, secret, "iv", 12)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		panic(err)
	}
	return k
}

// expandLabel is HKDF-Expand-Label of RFC 8446 §7.1 with an empty context.
func expandLabel(h func() hash.Hash, secret []byte, label string, n int) []byte {
	info := []byte{byte(n >> 8), byte(n), byte(len("tls13 " + label))}
	info = append(info, "tls13 "+label...)
	info = append(info, 0)
	out, err := hkdf.Expand(h, secret, string(info), n)
	if err != nil {
		panic(err)
	}
	return out
}

func (k *trafficKey) nonce() []byte {
	n := make([]byte, 12)
	copy(n, k.iv)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], k.seq)
	for i := range seq {
		n[4+i] ^= seq[i]
	}
	return n
}

// open decrypts a whole record; the inner plaintext keeps its type byte.
func (k *trafficKey) open(rec []byte) ([]byte, error) {
	return k.aead.Open(nil, k.nonce(), rec[5:], rec[:5])
}

// seal encrypts an inner plaintext (content || type) into a record.
func (k *trafficKey) seal(inner []byte) []byte {
	n := len(inner) + k.aead.Overhead()
	hdr := []byte{0x17, 3, 3, byte(n >> 8), byte(n)}
	rec := k.aead.Seal(hdr, k.nonce(), inner, hdr)
	k.seq++
	return rec
}

// update is the KeyUpdate step of RFC 8446 §7.2.
func (k *trafficKey) update() *trafficKey {
	next := expandLabel(k.hash, k.secret, "traffic upd", len(k.secret))
	return newTrafficKey(next, k.hash, k.keyLen)
}

func (r *resealer) keyLog(line []byte) (int, error) {
	f := strings.Fields(string(line))
	if len(f) == 3 && f[0] == "SERVER_TRAFFIC_SECRET_0" {
		s, err := hex.DecodeString(f[2])
		if err != nil {
			return 0, err
		}
		r.mu.Lock()
		r.secret = s
		r.mu.Unlock()
	}
	return len(line), nil
}

func (r *resealer) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending = append(r.pending, p...)
	var out []byte
	for len(r.pending) >= 5 {
		n := 5 + (int(r.pending[3])<<8 | int(r.pending[4]))
		if len(r.pending) < n {
			break
		}
		rec := r.pending[:n]
		out = append(out, r.reseal(rec)...)
		r.pending = r.pending[n:]
	}
	r.pending = append([]byte(nil), r.pending...)
	if err := r.send(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// reseal returns rec as the client must see it.
func (r *resealer) reseal(rec []byte) []byte {
	if rec[0] != 0x17 || r.secret == nil {
		return rec
	}
	if r.in == nil {
		// The first record that opens under the application secret
		// (at sequence 0) tells the suite: AES-128-GCM (SHA-256) or
		// AES-256-GCM (SHA-384).
		h, keyLen := sha256.New, 16
		if len(r.secret) == 48 {
			h, keyLen = sha512.New384, 32
		}
		k := newTrafficKey(r.secret, h, keyLen)
		if _, err := k.open(rec); err != nil {
			return rec // handshake traffic, or a suite this stub cannot follow
		}
		r.in, r.out = k, newTrafficKey(r.secret, h, keyLen)
	}
	inner, err := r.in.open(rec)
	if err != nil {
		panic("resealer lost track of the server's records: " + err.Error())
	}
	r.in.seq++
	return r.out.seal(inner)
}

func (r *resealer) send(b []byte) error {
	if r.holding {
		r.held = append(r.held, b...)
		return nil
	}
	if len(b) == 0 {
		return nil
	}
	_, err := r.Conn.Write(b)
	return err
}

// injectable reports whether records can be injected (TLS 1.3 with an
// AES-GCM suite, application traffic seen).
func (r *resealer) injectable() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.out != nil
}

// injectHandshake sends a post-handshake message (type, body) to the
// client; a KeyUpdate also moves the wire key on.
func (r *resealer) injectHandshake(typ byte, body []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	rec := r.out.seal(append(msg, 0x16))
	if typ == 24 {
		r.out = r.out.update()
	}
	return r.send(rec)
}

// hold gathers writes until flush sends them in one socket write.
func (r *resealer) hold() {
	r.mu.Lock()
	r.holding = true
	r.mu.Unlock()
}

func (r *resealer) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holding = false
	b := r.held
	r.held = nil
	// tls.Conn.CloseWrite leaves an expired write deadline behind.
	r.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return r.send(b)
}

// sessionTicket is a well-formed NewSessionTicket body (RFC 8446 §4.6.1).
func sessionTicket() []byte {
	b := []byte{0, 0, 0x0e, 0x10} // lifetime 3600 s
	b = append(b, 1, 2, 3, 4)     // age add
	b = append(b, 1, 7)           // nonce
	b = append(b, 0, 8)
	b = append(b, "ticket-1"...)
	return append(b, 0, 0) // no extensions
}
