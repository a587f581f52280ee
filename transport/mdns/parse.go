package mdns

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Errors of the decoders, each counted by Stats and never returned to a
// caller.
var (
	errMalformed = errors.New("mdns: malformed DNS message")
	errIgnored   = errors.New("mdns: DNS message mDNS ignores")
)

// question is one question of a received query.
type question struct {
	Name string // presentation format
	Type uint16
	QU   bool // the unicast-response bit (RFC 6762 §5.4)
}

// message is a received mDNS message reduced to what a Conn uses: the
// questions, and the records of the types service discovery uses, by
// section. Records of other types are left out; they are not errors.
type message struct {
	Query     bool // QR clear
	ID        uint16
	TC        bool // more known answers follow (RFC 6762 §7.2)
	Questions []question
	// Answers are the answers of a response, or the known answers of a
	// query (RFC 6762 §7.1).
	Answers []record
	// Authority holds the records a probe proposes (RFC 6762 §8.2).
	Authority []record
	// Additional holds a response's additional records.
	Additional []record
	// Bad counts the records whose data did not parse, left out.
	Bad int
}

// parseMessage decodes one mDNS message, record by record: a record of a
// type we use whose data does not parse is skipped and counted in
// message.Bad, and the rest of the message is kept; records of other types
// are skipped by their length, their data unread. It fails with
// errMalformed for bytes that are not a DNS message (a header, question
// or record header that runs past the end, a name that does not
// decompress), and with errIgnored for a message RFC 6762 §18 says to
// ignore: an opcode or response code other than zero.
func parseMessage(b []byte) (*message, error) {
	if len(b) > MaxMessage+48 {
		return nil, fmt.Errorf("%w: %d bytes", errMalformed, len(b))
	}
	if len(b) < 12 {
		return nil, fmt.Errorf("%w: %d bytes, shorter than a header", errMalformed, len(b))
	}
	flags := binary.BigEndian.Uint16(b[2:])
	opcode, rcode := int(flags>>11)&0xf, int(flags&0xf)
	out := &message{Query: flags&0x8000 == 0, ID: binary.BigEndian.Uint16(b), TC: flags&0x0200 != 0}
	var counts [4]int
	for i := range counts {
		counts[i] = int(binary.BigEndian.Uint16(b[4+2*i:]))
	}
	off := 12
	for range counts[0] {
		name, next, err := unpackName(b, off)
		if err == nil && next+4 > len(b) {
			err = errNameShort
		}
		if err != nil {
			return nil, fmt.Errorf("%w: question: %v", errMalformed, err)
		}
		qtype, qclass := binary.BigEndian.Uint16(b[next:]), binary.BigEndian.Uint16(b[next+2:])
		off = next + 4
		if qclass&^classFlush != classINET && qclass&^classFlush != classANY {
			continue
		}
		out.Questions = append(out.Questions, question{Name: name, Type: qtype, QU: qclass&classFlush != 0})
	}
	for i, dst := range []*[]record{&out.Answers, &out.Authority, &out.Additional} {
		for range counts[i+1] {
			name, next, err := unpackName(b, off)
			if err == nil && next+10 > len(b) {
				err = errNameShort
			}
			if err != nil {
				return nil, fmt.Errorf("%w: record header: %v", errMalformed, err)
			}
			class := binary.BigEndian.Uint16(b[next+2:])
			r := record{
				Name:  name,
				Type:  binary.BigEndian.Uint16(b[next:]),
				Flush: class&classFlush != 0,
				TTL:   binary.BigEndian.Uint32(b[next+4:]),
			}
			end := next + 10 + int(binary.BigEndian.Uint16(b[next+8:]))
			if end > len(b) {
				return nil, fmt.Errorf("%w: record data runs past the end", errMalformed)
			}
			off = end
			// A name in the data may point anywhere before its end.
			ok, err := r.unpackRdata(b[:end], next+10)
			if err != nil {
				out.Bad++
				continue
			}
			if ok && class&^classFlush == classINET {
				*dst = append(*dst, r)
			}
		}
	}
	if opcode != 0 || rcode != 0 { // QUERY, NOERROR
		return nil, fmt.Errorf("%w: opcode %d, rcode %d", errIgnored, opcode, rcode)
	}
	return out, nil
}

// The opaque carriage of bytes that are not a pir message: a response
// from an ephemeral port (so that other mDNS software ignores it, RFC
// 6762 §11, §6) with one record of a private-use type (RFC 6895 §3.1)
// named rawName, whose rdata is the datagram.
const (
	// rawType is the private-use RR type of the raw record (0xFF70, "p").
	rawType = 0xFF70
	// rawHeaderLen is the fixed header: ID 0, flags QR and AA, one answer.
	rawHeaderLen = 12
	// rawOverhead is what wraps a raw datagram: the header, the name
	// (21 bytes on the wire), type, class, TTL and rdata length.
	rawOverhead = rawHeaderLen + 21 + 10
)

// rawNameWire is rawName in wire format.
var rawNameWire = []byte("\x08_pir-raw\x04_udp\x05local\x00")

// appendRaw appends the raw message carrying p to dst.
func appendRaw(dst, p []byte) []byte {
	dst = append(dst,
		0, 0, // ID
		0x84, 0x00, // QR, AA
		0, 0, // questions
		0, 1, // answers
		0, 0, // authority
		0, 0, // additional
	)
	dst = append(dst, rawNameWire...)
	dst = binary.BigEndian.AppendUint16(dst, rawType)
	dst = binary.BigEndian.AppendUint16(dst, classINET)
	dst = binary.BigEndian.AppendUint32(dst, 0) // TTL: nothing to cache
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(p)))
	return append(dst, p...)
}

// parseRaw returns the datagram a raw message carries, a slice of b, or ok
// false when b is not exactly a raw message.
func parseRaw(b []byte) (p []byte, ok bool) {
	if len(b) < rawOverhead {
		return nil, false
	}
	h := b[:rawHeaderLen]
	if h[2]&0x80 == 0 || h[2]&0x78 != 0 || h[3]&0x0f != 0 || // QR, opcode 0, rcode 0
		binary.BigEndian.Uint16(h[4:]) != 0 || binary.BigEndian.Uint16(h[6:]) != 1 ||
		binary.BigEndian.Uint16(h[8:]) != 0 || binary.BigEndian.Uint16(h[10:]) != 0 {
		return nil, false
	}
	rest := b[rawHeaderLen:]
	if len(rest) < len(rawNameWire)+10 || string(rest[:len(rawNameWire)]) != string(rawNameWire) {
		return nil, false
	}
	rest = rest[len(rawNameWire):]
	if binary.BigEndian.Uint16(rest) != rawType || binary.BigEndian.Uint16(rest[2:])&^classFlush != classINET {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(rest[8:]))
	if len(rest)-10 != n {
		return nil, false
	}
	return rest[10:], true
}
