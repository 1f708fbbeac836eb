// A target for the symbolizer tests: it prints where its functions are and what its
// own runtime says is there, then waits until stdin is closed.
//
// Each line is "<kind> <address>" and the frames runtime.CallersFrames gives for that
// address, innermost first, as "<function> <file> <line>" triples.
package main

import (
	"fmt"
	"os"
	"reflect"
	"runtime"
)

// variant is set with -ldflags=-X so that otherwise equal builds differ in build ID.
var variant string

var sink int

// kprofDouble is small enough to be inlined into kprofAlpha.
func kprofDouble(x int) int {
	return x*2 + 1
}

//go:noinline
func kprofAlpha() []uintptr {
	pcs := make([]uintptr, 8)
	n := runtime.Callers(1, pcs) // pcs[0] is in kprofAlpha, pcs[1] in kprofBeta
	sink += kprofDouble(n)
	return pcs[:n]
}

//go:noinline
func kprofBeta() []uintptr {
	pcs := kprofAlpha()
	return pcs
}

// report prints the frames at pc: as a return address (pc-1 is looked up), or exactly.
func report(kind string, pc uintptr, exact bool) {
	q := pc
	if exact {
		q++ // CallersFrames looks up q-1
	}
	fmt.Printf("%s %#x", kind, pc)
	// Given one PC, CallersFrames leaves out the functions inlined code was inlined
	// into (it expects them as extra PCs); a second, invalid PC makes it add them.
	frames := runtime.CallersFrames([]uintptr{q, 0})
	for {
		f, more := frames.Next()
		fmt.Printf(" %s %s %d", f.Function, f.File, f.Line)
		if !more {
			break
		}
	}
	fmt.Println()
}

// inlinedPC returns an address in kprofAlpha's code that belongs to kprofDouble.
func inlinedPC(entry uintptr) uintptr {
	for pc := entry; pc < entry+4096; pc++ {
		f := runtime.FuncForPC(pc)
		if f == nil || f.Entry() != entry {
			break
		}
		if f.Name() == "main.kprofDouble" {
			return pc
		}
	}
	return 0
}

func main() {
	pcs := kprofBeta()
	entry := reflect.ValueOf(kprofAlpha).Pointer()
	report("entry", entry, true)
	report("leaf", pcs[0], true)
	report("ret", pcs[1], false)
	report("ret", pcs[2], false)
	if pc := inlinedPC(entry); pc != 0 {
		report("inlined", pc, true)
	}
	fmt.Println("ready", variant)
	os.Stdin.Read(make([]byte, 1))
}
