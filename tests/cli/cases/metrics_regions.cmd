@STRATA@ metrics @FIXTURES@/store | grep -E '^(# TYPE )?strata_(regions|protos|region_layers)[ {]'
