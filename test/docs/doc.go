// Package docs holds the test that keeps the commands of README.md and
// docs/QUICKSTART.md honest: every command in a fenced sh, bash or console block is
// either run by the test (against a real kube-apiserver where it needs a cluster),
// covered by `make demo`, or listed with the reason it cannot run on a test machine.
// A command that fits none of these fails the test. See docs_test.go.
package docs
