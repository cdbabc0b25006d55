-- wrk script for bench/bench.py: at the end of a run, prints latency
-- percentiles from wrk's own histogram (1 us steps, the one --latency reads),
-- one "latency-us PERCENTILE MICROSECONDS" line each.  --latency stops at
-- 99%; this goes on to 99.99% and the maximum, enough for p99.9 and a CDF.
-- Requests are left to wrk (no request() or response()), so the load is
-- the same as without a script.

local points = { 0 }
for p = 1, 99 do points[#points + 1] = p end
for i = 1, 9 do points[#points + 1] = 99 + i / 10 end
points[#points + 1] = 99.95
points[#points + 1] = 99.99
points[#points + 1] = 100

done = function(summary, latency, requests)
	if summary.requests == 0 then
		return
	end
	for _, p in ipairs(points) do
		local us
		if p == 0 then
			us = latency.min
		else
			us = latency:percentile(p)
		end
		-- wrk answers 0 where the rank is past its count (100%, or
		-- 99.99% of fewer than 5000 requests): that rank is the maximum.
		if p == 100 or us == 0 then
			us = latency.max
		end
		io.write(string.format("latency-us %g %d\n", p, us))
	end
end
