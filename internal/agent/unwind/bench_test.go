package unwind

import "testing"

// BenchmarkFromFile builds the tables of libc and python3 (opening the file,
// reading its sections, evaluating every FDE), reporting their rows.
func BenchmarkFromFile(b *testing.B) {
	for _, bm := range []struct{ name, path string }{{"libc", libcPath}, {"python3", pythonPath}} {
		b.Run(bm.name, func(b *testing.B) {
			needFile(b, bm.path)
			b.ReportAllocs()
			rows := 0
			for b.Loop() {
				t, err := FromFile(bm.path, 0)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(t.Rows)
			}
			b.ReportMetric(float64(rows), "rows")
		})
	}
}
