module fixture/no_http

go 1.19
