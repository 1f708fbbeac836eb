package symbolize

import (
	"strings"
	"testing"
)

func TestParseMapsKeepsExecutableMappings(t *testing.T) {
	const maps = `55d0c8a00000-55d0c8a02000 r--p 00000000 fe:00 247026                     /usr/bin/cat
55d0c8a02000-55d0c8a07000 r-xp 00002000 fe:00 247026                     /usr/bin/cat
7f10a0000000-7f10a0100000 r-xp 00026000 00:2a 1234                       /app/my lib.so (deleted)
7f10a0200000-7f10a0300000 rwxp 00000000 00:00 0 
7ffd1b5e0000-7ffd1b5e2000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`
	got, err := parseMaps(strings.NewReader(maps))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		m      procMapping
		isFile bool
	}{
		{procMapping{start: 0x55d0c8a02000, limit: 0x55d0c8a07000, offset: 0x2000, inode: 247026, path: "/usr/bin/cat"}, true},
		{procMapping{start: 0x7f10a0000000, limit: 0x7f10a0100000, offset: 0x26000, inode: 1234, path: "/app/my lib.so", deleted: true}, true},
		{procMapping{start: 0x7f10a0200000, limit: 0x7f10a0300000}, false},
		{procMapping{start: 0x7ffd1b5e0000, limit: 0x7ffd1b5e2000, path: "[vdso]"}, false},
		{procMapping{start: 0xffffffffff600000, limit: 0xffffffffff601000, path: "[vsyscall]"}, false},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings %+v, want %d", len(got), got, len(want))
	}
	for i, w := range want {
		if got[i] != w.m || got[i].isFile() != w.isFile {
			t.Errorf("mapping %d: %+v (file %v), want %+v (file %v)", i, got[i], got[i].isFile(), w.m, w.isFile)
		}
	}
}

func TestParseMapsLineRejectsMalformedLines(t *testing.T) {
	cases := []struct{ name, line string }{
		{"too few fields", "00400000-00401000 r-xp 00000000"},
		{"no dash in the range", "00400000 r-xp 00000000 fe:00 1 /bin/x"},
		{"a start that is not hex", "zz-00401000 r-xp 00000000 fe:00 1 /bin/x"},
		{"a limit below the start", "00402000-00401000 r-xp 00000000 fe:00 1 /bin/x"},
		{"an offset that is not hex", "00400000-00401000 r-xp 0x0g fe:00 1 /bin/x"},
		{"an inode that is not a number", "00400000-00401000 r-xp 00000000 fe:00 x /bin/x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := parseMapsLine(tc.line); err == nil {
				t.Errorf("parseMapsLine(%q): no error", tc.line)
			}
		})
	}
}
