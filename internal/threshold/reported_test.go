package threshold

import "testing"

func TestReportedReportsAProblemSetOnceAndAgainWhenItComesBack(t *testing.T) {
	r := Reported[string]{}
	for _, step := range []struct {
		name     string
		problems []string
		want     bool
	}{
		{"a new problem set is reported", []string{"no cpu request"}, true},
		{"the same set is not reported again", []string{"no cpu request"}, false},
		{"a changed set is reported", []string{"no cpu request", "no memory limit"}, true},
		{"no problems are not reported", nil, false},
		{"a set that comes back is reported again", []string{"no cpu request"}, true},
	} {
		if got := r.Changed("pod", step.problems); got != step.want {
			t.Fatalf("%s: Changed = %t, want %t", step.name, got, step.want)
		}
	}
	r.Retain(map[string]bool{"other": true})
	if len(r) != 0 {
		t.Fatalf("Retain kept %v, want nothing: pod was not in keep", r)
	}
}
