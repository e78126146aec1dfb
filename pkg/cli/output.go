package cli

import (
	"encoding/json"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/yaml"
)

// flushWriter is a tabwriter.
type flushWriter interface {
	io.Writer
	Flush() error
}

// column is one column of a table: priority 1 shows only with -o wide.
type column struct {
	name     string
	priority int32
}

// itemWriter prints items as they come, in batches: a table (its header
// once, the batch's rows aligned together), JSON (one object per line) or
// YAML (one document per item). Nothing is held beyond one batch.
type itemWriter struct {
	out    io.Writer
	format string
	cols   []metav1.TableColumnDefinition
	rows   []metav1.TableRow
	tw     flushWriter
	header bool // the table's header was printed
	items  int
}

func newItemWriter(out io.Writer, format string, cols ...column) *itemWriter {
	w := &itemWriter{out: out, format: format}
	for _, c := range cols {
		w.cols = append(w.cols, metav1.TableColumnDefinition{Name: c.name, Type: "string", Priority: c.priority})
	}
	if format == "" || format == "wide" {
		w.tw = printers.GetNewTabWriter(out)
	}
	return w
}

// add prints an item (JSON, YAML) or queues its row (a table, one cell a
// column).
func (w *itemWriter) add(item any, cells ...any) error {
	w.items++
	switch w.format {
	case "json":
		b, err := json.Marshal(item)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w.out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(item)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w.out, "---\n%s", b)
		return err
	}
	w.rows = append(w.rows, metav1.TableRow{Cells: cells})
	return nil
}

// flush prints the queued rows.
func (w *itemWriter) flush() error {
	if w.tw == nil || len(w.rows) == 0 {
		return nil
	}
	p := printers.NewTablePrinter(printers.PrintOptions{Wide: w.format == "wide", NoHeaders: w.header})
	if err := p.PrintObj(&metav1.Table{ColumnDefinitions: w.cols, Rows: w.rows}, w.tw); err != nil {
		return err
	}
	w.header, w.rows = true, w.rows[:0]
	return w.tw.Flush()
}
