@STRATA@ --frobnicate
