package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/otok/otok/flash"
)

func init() {
	register(&command{
		name:    "df",
		usage:   "[--json]",
		summary: "store size, free flash, reserve, per-image sizes and bytes written, which containers use what",
		run:     runDf,
	})
}

type dfJSON struct {
	Store        string      `json:"store"`
	FSTotal      int64       `json:"fs_total"`
	FSAvail      int64       `json:"fs_avail"`
	Reserve      int64       `json:"reserve"`
	Usable       int64       `json:"usable"`
	StoreBytes   int64       `json:"store_bytes"`
	Imports      int64       `json:"imports_total"`
	BytesWritten int64       `json:"bytes_written_total"`
	TempEntries  int         `json:"temp_entries"`
	Images       []imageJSON `json:"images"`
}

func runDf(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, commands["df"])
	asJSON := fs.Bool("json", false, "JSON output")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	st, err := openStore(e, "")
	if err != nil {
		return err
	}
	sp, err := st.Space()
	if err != nil {
		return err
	}
	imgs, errs := st.List()
	for _, err := range errs {
		fmt.Fprintf(e.stderr, "otok df: %v\n", err)
	}
	c := st.Counters()
	d := dfJSON{Store: st.Root(), FSTotal: sp.Total, FSAvail: sp.Avail, Reserve: sp.Reserve, Usable: sp.Usable(),
		Imports: c.Imports, BytesWritten: c.BytesWritten, TempEntries: len(st.TempEntries()), Images: []imageJSON{}}
	users := imageUsers(e)
	// An image stored under several names holds one content: count it once.
	d.StoreBytes = flash.ContentBytes(imgs)
	contents := map[string]int{}
	for _, i := range imgs {
		contents[i.Digest]++
		d.Images = append(d.Images, imgJSON(e, i, users))
	}
	if *asJSON {
		return writeJSON(e.stdout, d)
	}
	h := flash.HumanBytes
	shared := ""
	if len(contents) < len(d.Images) {
		shared = fmt.Sprintf(" (%d distinct content(s); SIZE of a shared one is counted once)", len(contents))
	}
	fmt.Fprintf(e.stdout, "store     %s: %s in %d image(s)%s\n", d.Store, h(d.StoreBytes), len(d.Images), shared)
	fmt.Fprintf(e.stdout, "flash     %s total, %s free, reserve %s, usable for images %s\n", h(d.FSTotal), h(d.FSAvail), h(d.Reserve), h(d.Usable))
	fmt.Fprintf(e.stdout, "written   %s by %d import(s) since the store was created\n", h(d.BytesWritten), d.Imports)
	if d.TempEntries > 0 {
		fmt.Fprintf(e.stdout, "temp      %d leftover entr(ies), swept by the next import\n", d.TempEntries)
	}
	if len(d.Images) == 0 {
		return nil
	}
	fmt.Fprintln(e.stdout)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tDIGEST\tKIND\tSIZE\tWRITTEN\tUSED BY")
	for _, j := range d.Images {
		used := strings.Join(j.UsedBy, ",")
		if used == "" {
			used = "-"
		}
		fmt.Fprintf(tw, "%s:%s\t%s\t%s\t%s\t%s\t%s\n", j.Name, j.Version, strings.TrimPrefix(j.Digest, "sha256:")[:12], j.Kind, h(j.Disk), h(j.Written), used)
	}
	return tw.Flush()
}
