package h1

import (
	"strings"
	"testing"
	"time"
)

// chunkedWire is a chunked answer of data, one chunk per byte, each
// chunk-size line carrying ext.
func chunkedWire(data, ext string) string {
	var sb strings.Builder
	sb.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
	for i := range len(data) {
		sb.WriteString("1" + ext + "\r\n" + data[i:i+1] + "\r\n")
	}
	sb.WriteString("0\r\n\r\n")
	return sb.String()
}

// Chunk extensions are discarded, so framing that is mostly extension
// would let an upstream send megabytes for every byte max_response_bytes
// counts. Like net/http (which refuses it as "too much non-data"), the
// client allows 16 bytes of framing per chunk plus twice its data, and
// fails the body when the excess passes 16 KiB; a byte per chunk without
// extensions, a legitimate stream, is read.
func TestChunkedFramingOverheadIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name, wire string
		ok         bool
	}{
		{"a byte per chunk", chunkedWire(strings.Repeat("x", 20000), ""), true},
		{"short extensions", chunkedWire(strings.Repeat("x", 2000), ";a=b"), true},
		{"4 KB extension per byte", chunkedWire(strings.Repeat("x", 2000), ";"+strings.Repeat("a", 4000)), false},
		// Exactly at the allowance (a 16-byte size line for 1 byte of
		// data): net/http reads any number of them, and so must the
		// client.
		{"at the allowance", chunkedWire(strings.Repeat("x", 9000), ";"+strings.Repeat("e", 14)), true},
		{"one byte over it", chunkedWire(strings.Repeat("x", 20000), ";"+strings.Repeat("e", 15)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, stdErr := stdParse([]byte(tc.wire), "GET", 1<<20)
			if (stdErr == nil) != tc.ok {
				t.Fatalf("net/http on the same bytes: %v, want accepted %v", stdErr, tc.ok)
			}
			s := newRawServer(t, func(rc *rawConn) {
				if _, _, err := rc.readRequest(); err != nil {
					return
				}
				rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
				rc.Write([]byte(tc.wire))
				rc.waitClosed(5 * time.Second)
			})
			c := s.client(t, Options{})
			_, body, err := get(t, c, "/")
			if tc.ok && (err != nil || !strings.HasPrefix(body, "xx")) {
				t.Fatalf("a legitimate chunked body failed: %v (%d bytes)", err, len(body))
			}
			if !tc.ok && err == nil {
				t.Fatalf("accepted %d bytes of framing for a %d-byte body", len(tc.wire), len(body))
			}
		})
	}
}
