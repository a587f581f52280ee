module github.com/pirlan/pir/tools

go 1.26.0

replace github.com/pirlan/pir => ../
