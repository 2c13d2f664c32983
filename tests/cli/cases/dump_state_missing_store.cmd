@STRATA@ dump-state nostore
