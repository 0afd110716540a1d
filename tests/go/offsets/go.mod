module fixture/offsets

go 1.19
