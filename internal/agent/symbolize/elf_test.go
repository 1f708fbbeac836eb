package symbolize

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

func TestObjHeaderPlacesFileOffsets(t *testing.T) {
	// A PIE's segments: text at file offset 0x1000 linked at 0x1000, data at 0x3de8
	// linked at 0x4de8 (vaddr and offset differ past the first page).
	h := &objHeader{loads: []loadSeg{{off: 0, filesz: 0x628, vaddr: 0}, {off: 0x1000, filesz: 0x1a5, vaddr: 0x1000}, {off: 0x2de8, filesz: 0x258, vaddr: 0x3de8}}}
	cases := []struct {
		name string
		off  uint64
		want uint64
		ok   bool
	}{
		{"an offset in the text segment", 0x1139, 0x1139, true},
		{"an offset in a segment linked elsewhere", 0x2df0, 0x3df0, true},
		{"an offset between segments is nowhere", 0x1800, 0, false},
		{"an offset past the file is nowhere", 0x10000, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := h.vaddr(tc.off)
			if got != tc.want || ok != tc.ok {
				t.Errorf("vaddr(%#x) = %#x, %v; want %#x, %v", tc.off, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWalkNotesStopsAtMalformedNotes(t *testing.T) {
	le := func(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }
	note := func(namesz, descsz, typ uint32, name string, desc string) []byte {
		b := append(append(append(le(namesz), le(descsz)...), le(typ)...), name...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, desc...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	gnu := note(4, 4, 3, "GNU\x00", "\xde\xad\xbe\xef")
	goNote := note(4, 3, 4, "Go\x00\x00", "a/b")
	cases := []struct {
		name string
		data []byte
		want []string
	}{
		{"two notes are both seen", append(append([]byte{}, gnu...), goNote...), []string{"GNU/3/deadbeef", "Go/4/612f62"}},
		{"a descsz past the end stops the walk", append(append([]byte{}, gnu...), note(4, 1000, 4, "Go\x00\x00", "x")...), []string{"GNU/3/deadbeef"}},
		{"a namesz past the end stops the walk", note(1<<31, 0, 3, "GNU\x00", ""), nil},
		{"a short header is ignored", []byte{1, 2, 3}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			walkNotes(tc.data, binary.LittleEndian, 4, func(name string, typ uint32, desc []byte) {
				got = append(got, name+"/"+string(rune('0'+typ))+"/"+hex.EncodeToString(desc))
			})
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
