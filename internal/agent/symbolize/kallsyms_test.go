package symbolize

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKallsymsNamesTextOnly(t *testing.T) {
	const kallsyms = `0000000000000000 A fixed_percpu_data
ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t __do_thing
ffffffff81000100 T do_thing
ffffffff81000200 W weak_fn
ffffffff81000300 T last_core_fn
ffffffff82000000 D some_data
ffffffff82000010 d more_data
ffffffffc0000000 t ext4_fn	[ext4]
ffffffffc0000400 d ext4_data	[ext4]
bogus line
`
	k, err := parseKallsyms(strings.NewReader(kallsyms))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		addr uint64
		want string
	}{
		{"below the first symbol is nothing", 0xffffffff80000000, ""},
		{"of aliases the shortest name with fewest underscores", 0xffffffff81000000, "_text"},
		{"of aliases a name without leading underscores wins", 0xffffffff81000150, "do_thing"},
		{"weak symbols are text", 0xffffffff81000210, "weak_fn"},
		{"a text symbol ends where data starts", 0xffffffff82000005, ""},
		{"the last core text symbol covers up to the data", 0xffffffff81ffffff, "last_core_fn"},
		{"module text is named without the module", 0xffffffffc0000010, "ext4_fn"},
		{"module data is nothing", 0xffffffffc0000400, ""},
		{"far past the last symbol is nothing", 0xffffffffc1000000, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := k.lookup(tc.addr); got != tc.want {
				t.Errorf("lookup(%#x) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
	if n := k.len(); n != 5 {
		t.Errorf("len = %d, want 5 named text addresses", n)
	}
}

func TestParseKallsymsRefusesHiddenAddresses(t *testing.T) {
	cases := []struct {
		name       string
		in         string
		restricted bool
	}{
		{"all zeros is kptr_restrict", "0000000000000000 T _stext\n0000000000000000 t foo\n", true},
		{"an empty file has no symbols", "", false},
		{"lines that are not symbols are no symbols", "hello world\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseKallsyms(strings.NewReader(tc.in))
			if err == nil || errors.Is(err, ErrKernelRestricted) != tc.restricted {
				t.Errorf("err = %v; want an error, ErrKernelRestricted %v", err, tc.restricted)
			}
		})
	}
}
