// Package uci reads and writes OpenWrt's UCI configuration syntax
// (/etc/config/*), the way libuci's file parser does:
//
//	package 'otok'                 # optional
//	config container 'dns'         # section of type container named dns
//		option image 'adguard'     # single value
//		list command '/bin/httpd'  # list: one value per line, in order
//		list command "-f"
//	config agent                   # anonymous section
//		option stop_timeout 10
//
// Words are concatenations of unquoted, 'single-quoted' (no escapes) and
// "double-quoted" (backslash escapes) parts; an unquoted backslash escapes
// the next character and a backslash at the end of a line continues the
// statement on the next line; '#' outside quotes starts a comment; ';'
// separates statements on one line. As in libuci, a later `option` of the
// same name replaces an earlier one and a `list` after an `option` turns it
// into a list that starts with the option's value.
//
// It knows nothing of otok: it turns text into sections and options (and
// back, for fixtures and tools) and reports errors as file:line: reason.
//
// Usage:
//
//	f, err := uci.Parse("/etc/config/otok", data)
//	for _, s := range f.Sections {
//		if s.Type == "container" {
//			img, _ := s.Get("image")
//			cmd := s.List("command")
//		}
//	}
package uci
