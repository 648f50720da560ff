# Fit one benchmark case with lme4; run by run.py, not by hand.
#
#   Rscript fit_lme4.R DATADIR FORMULA FAMILY REPS WARMUP_THRESHOLD BASELINE OUT [REML [START [LINK]]]
#
# DATADIR holds data.csv, schema.tsv (column<TAB>numeric|integer|factor) and
# levels_<column>.txt (one level per line, in the pandas/R level order) for every
# factor column.  The data are read and the factors built before any timing.
# Each timed fit is system.time() around the lmer()/glmer() call alone.  The
# first fit is a warm-up when it takes less than WARMUP_THRESHOLD seconds,
# otherwise it counts as the first timed fit.  BASELINE=1 stops after loading
# lme4 and the data (run.py subtracts that process's peak RSS).  Results go to
# OUT as key<TAB>value lines.  REML (TRUE, the default, or FALSE) is lmer's criterion;
# START, comma-separated, is lmer's start θ; LINK, when given and not empty, glmer's link.

args <- commandArgs(trailingOnly = TRUE)
datadir <- args[1]
form <- as.formula(args[2])
family <- args[3]
reps <- as.integer(args[4])
warmup_threshold <- as.numeric(args[5])
baseline <- args[6] == "1"
out <- args[7]
reml <- length(args) < 8 || args[8] == "TRUE"
start <- if (length(args) >= 9 && nzchar(args[9])) as.numeric(strsplit(args[9], ",")[[1]]) else NULL
link <- if (length(args) >= 10) args[10] else ""

suppressPackageStartupMessages(library(lme4))

schema <- read.delim(file.path(datadir, "schema.tsv"), header = FALSE,
                     colClasses = "character", col.names = c("name", "type"))
classes <- ifelse(schema$type == "factor", "character", schema$type)
names(classes) <- schema$name
d <- read.csv(file.path(datadir, "data.csv"), colClasses = classes,
              check.names = FALSE, stringsAsFactors = FALSE, na.strings = "")
for (col in schema$name[schema$type == "factor"]) {
  lv <- readLines(file.path(datadir, paste0("levels_", col, ".txt")), encoding = "UTF-8")
  d[[col]] <- factor(d[[col]], levels = lv)
}

res <- c(R = paste(R.version$major, R.version$minor, sep = "."),
         lme4 = as.character(packageVersion("lme4")),
         Matrix = as.character(packageVersion("Matrix")),
         blas = unname(extSoftVersion()["BLAS"]),
         lapack = La_library())

fit <- function() {
  if (family == "gaussian") {
    lmer(form, data = d, REML = reml, start = start)
  } else {
    fam <- get(family, mode = "function")
    glmer(form, data = d, family = if (nzchar(link)) fam(link = link) else fam())
  }
}

if (!baseline) {
  invisible(gc(reset = TRUE))
  times <- c()
  t <- system.time(m <- fit())[["elapsed"]]
  if (t >= warmup_threshold) {
    times <- c(times, t)
    res["warmup"] <- "FALSE"
  } else {
    res["warmup"] <- "TRUE"
    res["warmup_time"] <- format(t, digits = 17)
  }
  while (length(times) < reps) {
    rm(m)
    t <- system.time(m <- fit())[["elapsed"]]
    times <- c(times, t)
  }
  objective <- if (isREML(m)) REMLcrit(m) else -2 * as.numeric(logLik(m))
  g <- gc()
  res["times"] <- paste(format(times, digits = 17), collapse = ",")
  res["objective"] <- format(objective, digits = 17)
  res["nfev"] <- as.character(m@optinfo$feval)
  res["gc_max_used_mb"] <- format(sum(g[, which(colnames(g) == "max used") + 1]), digits = 10)
  res["messages"] <- paste(unlist(m@optinfo$conv$lme4$messages), collapse = "; ")
}
writeLines(paste(names(res), res, sep = "\t"), out)
