package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// apkVersion is apk-tools' version grammar (src/version.c, apk-package(5)):
// number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}. Every string
// it accepts is also a valid opkg version (opkg compares any string,
// Debian-style; ':' for an epoch and whitespace are excluded here), so one
// version serves both package formats.
var apkVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*[a-z]?(_(alpha|beta|pre|rc|cvs|svn|git|hg|p)[0-9]*)*(~[0-9a-f]+)?(-r[0-9]+)?$`)

// validVersion reports why v is not a version both opkg and apk accept.
func validVersion(v string) error {
	if !apkVersion.MatchString(v) {
		return fmt.Errorf("version %q: not valid for apk/opkg, which need "+
			"number{.number}{letter}{_suffix{number}}{~hexhash}{-rN}, e.g. 1.2.3-r1 or 0.0.0.42~1a2b3c4-r1", v)
	}
	return nil
}

var (
	// git describe --tags --long --always --abbrev=N: TAG-COUNT-gHASH
	describeLong = regexp.MustCompile(`^(.+)-([0-9]+)-g([0-9a-f]{4,40})$`)
	// --always without any tag: just the abbreviated hash
	describeHash = regexp.MustCompile(`^[0-9a-f]{4,40}$`)
	// tag v1.2.3, 1.2, v2.0.0-rc1, v1.0-beta2
	tagVersion = regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:[-_.]?(alpha|beta|pre|rc)([0-9]*))?$`)
)

// fromDescribe turns `git describe --tags --long --always` output into a
// package version (release is the package release, -rN):
//
//	v1.2.3-0-g1a2b3c4   → 1.2.3-rN           (a tagged commit)
//	v1.2.3-5-g1a2b3c4   → 1.2.3.5~1a2b3c4-rN (5 commits after v1.2.3)
//	v2.0-rc1-0-g1a2b3c4 → 2.0_rc1-rN
//	1a2b3c4 (no tags)   → 0.0.0.C~1a2b3c4-rN with C = commits (git rev-list --count HEAD)
//
// Snapshots sort after their tag and before the next release in both opkg
// and apk order; ~hash is apk's commit-hash field and ignored when comparing.
func fromDescribe(describe string, commits, release int) (string, error) {
	d := strings.TrimSpace(describe)
	if strings.HasSuffix(d, "-dirty") {
		return "", fmt.Errorf("git describe %q: the tree has uncommitted changes; commit them or set PKG_VERSION", d)
	}
	if release < 0 {
		return "", fmt.Errorf("release %d: must be 0 or more", release)
	}
	var v string
	switch {
	case describeLong.MatchString(d):
		m := describeLong.FindStringSubmatch(d)
		tm := tagVersion.FindStringSubmatch(m[1])
		if tm == nil {
			return "", fmt.Errorf("git describe %q: tag %q is not a version (want v1.2.3 or v1.2.3-rc1)", d, m[1])
		}
		v = tm[1]
		if tm[2] != "" {
			v += "_" + tm[2] + tm[3]
		}
		if n, _ := strconv.Atoi(m[2]); n > 0 {
			v += "." + m[2] + "~" + m[3]
			if tm[2] != "" {
				// 2.0_rc1.5 is not a valid apk version: the snapshot
				// count goes into the suffix number instead.
				v = tm[1] + "_" + tm[2] + tm[3] + "_git" + m[2] + "~" + m[3]
			}
		}
	case describeHash.MatchString(d):
		if commits <= 0 {
			return "", fmt.Errorf("git describe %q: no tag, so the commit count is needed (git rev-list --count HEAD)", d)
		}
		v = fmt.Sprintf("0.0.0.%d~%s", commits, d)
	default:
		return "", fmt.Errorf("git describe %q: not the output of git describe --tags --long --always", d)
	}
	v += "-r" + strconv.Itoa(release)
	return v, validVersion(v)
}
