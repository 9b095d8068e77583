module github.com/otok/otok

go 1.26
