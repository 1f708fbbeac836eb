package capture

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// The CRD's ProfileType enum is a kubebuilder marker, which cannot name Go constants:
// AllTypes is the source, and this test fails when the marker drifts from it.
func TestTheCRDProfileTypeEnumListsAllTypes(t *testing.T) {
	src, err := os.ReadFile("../../api/v1alpha1/profilingconfig_types.go")
	if err != nil {
		t.Fatal(err)
	}
	before, _, found := strings.Cut(string(src), "\ntype ProfileType string\n")
	_, marker, ok := strings.Cut(before[strings.LastIndex(before, "\n")+1:], "// +kubebuilder:validation:Enum=")
	if !found || !ok {
		t.Fatal("no Enum marker right above `type ProfileType string` in api/v1alpha1/profilingconfig_types.go")
	}
	want := make([]string, len(AllTypes))
	for i, typ := range AllTypes {
		want[i] = string(typ)
	}
	if got := strings.Split(marker, ";"); !slices.Equal(got, want) {
		t.Fatalf("the CRD enum lists %v, AllTypes %v: change the marker and run `make manifests generate`", got, want)
	}
}
