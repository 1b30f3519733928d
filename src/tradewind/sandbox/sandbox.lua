-- The sandbox bootstrap, run once per Lua state with host functions as arguments.
-- It builds strategies' environments from safe functions only (one per assignment the state holds:
-- `new_env`), installs the instruction and time hook on every coroutine a strategy can run in, and
-- returns the functions the host calls.
local host_get, host_data, host_ta, host_array, host_print, limit, step, time_limit, ta_names, ta_multi, block_shift, host_beat = ...

local debug_sethook, debug_getmetatable, os_clock, co_create, co_resume, co_status = debug.sethook, debug.getmetatable, os.clock, coroutine.create, coroutine.resume, coroutine.status
local string_rep, table_concat, setmetatable_, getmetatable_ = string.rep, table.concat, setmetatable, getmetatable
local type_, error_, tostring_, select_ = type, error, tostring, select

local MAX_STRING = 1048576       -- string.rep result cap (bytes)
local MAX_SUBJECT = 100000       -- pattern functions: subject cap
local MAX_PATTERN = 256          -- pattern functions: pattern cap
local MAX_FORMAT = 256           -- os.date and string.pack/unpack/packsize: format cap
local MAX_TA_TABLE = 100000      -- a plain table passed to ta: values cap
local MAX_PRINT = 4096           -- print: what one call hands the host (the log holds 4 KiB anyway)

local used, deadline, exhausted = 0, 0, false
local LIMIT_MARK = "\0tw-limit:"

-- Without the hook, the backtest runner's proof (see `runner`): T_MIN; the host is told the runner is alive
-- at most every beat_s (CPU seconds), last at `beat`; the batch's start (t0), what its C calls charged
-- (spent), and the CPU time the host's functions took (host), which ran no Lua instruction.
local proof = {T_MIN = 1e-10, beat_s = 0.05, beat = 0, t0 = 0, spent = 0, host = 0, gc = collectgarbage}
if step == 0 then
  do
    local function after(t, ...)
      proof.host = proof.host + (os.clock() - t)
      return ...
    end
    local function timed(f)
      return function(...) return after(os.clock(), f(...)) end
    end
    host_get, host_data, host_ta, host_array = timed(host_get), timed(host_data), timed(host_ta), timed(host_array)
  end
end

local function every_instruction()
  error_(LIMIT_MARK .. (exhausted or "instructions"), 2)
end

local function hook()
  used = used + step
  if used > limit then
    exhausted = "instructions"
  elseif not deadline then
    deadline = os_clock() + time_limit
  elseif os_clock() > deadline then
    exhausted = "time"
  end
  if exhausted then
    -- From now on every instruction raises, so pcall cannot swallow the limit.
    debug_sethook(every_instruction, "", 1)
    error_(LIMIT_MARK .. exhausted, 2)
  end
end

-- step 0: no hook at all (a backtest worker's optimisation trial, whose process its parent kills on a
-- wall-clock deadline: see backtest/worker.py). Any count hook makes Lua 5.4 trap on every instruction,
-- about doubling the cost of each; without it only the charges below count instructions.
local function guard(co) if step > 0 then debug_sethook(co, hook, "", step) end return co end

-- C functions run without count hooks: the wrappers below charge the instruction budget for the work
-- they are about to do, so a loop of heavy C calls meets the instruction limit like any other loop.
-- The charges are calibrated on the work measured: one instruction of the budget is about 4 ns, so
-- copying a string costs about one instruction per 8 bytes and os.date about 20 per format character.
-- A large charge also looks at the clock, which the hook would only see after its next 1,000 instructions.
local function charge(n)
  used = used + n
  if used > limit then
    exhausted = "instructions"
    error_(LIMIT_MARK .. "instructions", 3)
  end
  if n > 100000 and deadline and os_clock() > deadline then
    exhausted = "time"
    error_(LIMIT_MARK .. "time", 3)
  end
end
-- The host's work for a ta computation (a cache miss), charged from the host after the fact: the hook
-- or the next charge sees the budget exhausted.
local function host_charge(n) used = used + n end

-- Read-only views of host arrays (candles and indicator results): shared, never copied into Lua
-- element by element. A view keeps under private keys no strategy can name: its host id, length
-- (and, in a backtest, offset and NaN lead), its last two values (what most strategies read: x[#x],
-- x[#x - 1]), and, fetched on the first read of any other element, the array's bytes as one Lua
-- string that `string.unpack` reads in C. A strategy that reads many elements (a loop) gets them
-- unpacked into a private table once. A backtest slides one view along the whole history (offset).
local ID, LEN, OFF, NANP, DATA, FMT, LAST, PREV, DESC, MISS, MAT = {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}
local BLK, HIT = {}, {}
local NAN = 0/0
local TAG = 1 << 62
local MATERIALIZE_AFTER, MATERIALIZE_MAX = 16, 5000
local rawget_, rawset_, next_, rawlen_ = rawget, rawset, next, rawlen
local string_unpack = string.unpack
local debug_setmetatable = debug.setmetatable
local formats = {}      -- "=ddd...d" by length, for unpacking a whole array at once

-- A backtest reads its whole-history arrays (the candles, and the indicators computed once over the
-- history) in blocks of BLOCK values: each block is fetched from the host as bytes the first time a view
-- reads into it and unpacked into a table, and the blocks outside the window being read are dropped. So
-- an array of a year of minutes costs a few hundred KB of the strategy's memory, not 8 MB, and a read is
-- two table lookups (no host call, no string.unpack).
local BLOCK_SHIFT = block_shift
local BLOCK_MASK = (1 << BLOCK_SHIFT) - 1
local block_formats = {}  -- "=ddd...d" by format and length: one block at once
local series_blocks = {}  -- by array id: {fmt = "=d" or "=j", [k] = the values of block k}
local function blocks_of(id, fmt)
  local b = series_blocks[id]
  if b == nil then
    b = {fmt = fmt or "=d"}
    series_blocks[id] = b
  end
  return b
end
-- The values of the block of array id (blocks b) that holds position p (from 0), for a view of n values
-- from position off: the blocks outside the view's are dropped first (a backtest moves forward), then
-- that block is fetched and unpacked. Called when b has no such block yet.
local function load_block(b, id, p, off, n)
  local k, first, last = p >> BLOCK_SHIFT, off >> BLOCK_SHIFT, (off + n - 1) >> BLOCK_SHIFT
  for j in next_, b do
    if j ~= "fmt" and (j < first or j > last) then b[j] = nil end
  end
  local bytes = host_data(id, k)
  local fmt = b.fmt
  local m = #bytes // 8
  local key = fmt .. m
  local f = block_formats[key]
  if not f then f = fmt .. string_rep(fmt:sub(2), m - 1) block_formats[key] = f end
  local t = step == 0 and os_clock()
  local values = {string_unpack(f, bytes)}
  if t then  -- C work (the hook-free proof's host time), and the four instructions it took, charged
    proof.host, proof.spent = proof.host + (os_clock() - t), proof.spent + 4
  end
  values[m + 1] = nil  -- string.unpack's last result is the next position
  b[k] = values
  return values
end

local function fetch(t)
  local d = host_data(rawget_(t, ID))  -- bytes, or false when too long to copy (then element by element)
  rawset_(t, DATA, d)
  return d
end

local view_mt
local function view_len(t) return rawget_(t, LEN) end
local function read_only() error_("candle and indicator arrays are read-only", 2) end
local function view_pairs(t)
  local n = rawget_(t, LEN)
  return function(_, i) i = i + 1 if i <= n then return i, t[i] end end, t, 0
end

local function materialize(t, d, n)
  local fmt = rawget_(t, FMT) or "=d"
  local key = fmt .. n
  local f = formats[key]
  if not f then f = fmt .. string_rep(fmt:sub(2), n - 1) formats[key] = f end
  local arr = {string_unpack(f, d)}
  arr[n + 1] = nil  -- string.unpack's last result is the next position
  debug_setmetatable(t, {__index = arr, __len = view_len, __newindex = read_only, __pairs = view_pairs,
                         __metatable = "read-only array", [MAT] = true})
  return arr
end

local function slow_get(t, i, n)
  local np = rawget_(t, NANP)
  if np and i <= np then return NAN end  -- the warm-up of a backtest's whole-history indicator
  local d = rawget_(t, DATA)
  if d == nil then d = fetch(t) end
  if not d then return host_get(rawget_(t, ID), (rawget_(t, OFF) or 0) + i) end
  local m = (rawget_(t, MISS) or 0) + 1
  if m >= MATERIALIZE_AFTER and n <= MATERIALIZE_MAX then return materialize(t, d, n)[i] end
  rawset_(t, MISS, m)
  return (string_unpack(rawget_(t, FMT) or "=d", d, ((rawget_(t, OFF) or 0) + i - 1) * 8 + 1))
end

view_mt = {
  __index = function(t, i)
    local n = rawget_(t, LEN)
    if i == n then
      local v = rawget_(t, LAST)
      if v ~= nil then return v end
    elseif i == n - 1 then
      local v = rawget_(t, PREV)
      if v ~= nil then return v end
    end
    if type_(i) ~= "number" or i < 1 or i > n or i % 1 ~= 0 then return nil end
    return slow_get(t, i, n)
  end,
  __len = view_len,
  __newindex = read_only,
  __pairs = view_pairs,
  __metatable = "read-only array",
}
-- Arrays travel as descriptors id << 38 | offset << 17 | length (see ta.py); `#x` needs no host call.
-- A live view (offset 0, no lead) keeps its tagged descriptor, ready to hand back to the host.
local function live_view(desc, last, prev, fmt)
  return setmetatable_({[ID] = (desc >> 38) & 16777215, [LEN] = desc & 131071, [LAST] = last, [PREV] = prev,
                        [DESC] = TAG | desc, [FMT] = fmt}, view_mt)
end
-- A backtest's views of whole-history arrays have their own metatable: every private key is always
-- present (plain indexing, no rawget calls on the hot path); values come from the array's blocks.
local series_mt
-- The window a backtest's candle views show: the runner moves it before each candle (two stores, however
-- many candle arrays the strategy reads); every candle view of the run reads it.
local win_off, win_len = 0, 0
local candle_view_mt
local function candle_index(t, i)
  local n = win_len
  if i ~= n and (type_(i) ~= "number" or i < 1 or i > n or i % 1 ~= 0) then return nil end
  local off = win_off
  local p = off + i - 1
  local b = t[BLK]
  local values = b[p >> BLOCK_SHIFT] or load_block(b, t[ID], p, off, n)
  return values[(p & BLOCK_MASK) + 1]
end
candle_view_mt = {__index = candle_index, __len = function() return win_len end, __newindex = read_only,
                  __pairs = function(t)
                    local n = win_len
                    return function(_, i) i = i + 1 if i <= n then return i, t[i] end end, t, 0
                  end,
                  __metatable = "read-only array"}
local function candle_view(desc, fmt)
  local id = (desc >> 38) & 16777215
  return setmetatable_({[ID] = id, [BLK] = blocks_of(id, fmt)}, candle_view_mt)
end
local function series_index(t, i)
  local n = t[LEN]
  if i ~= n and (type_(i) ~= "number" or i < 1 or i > n or i % 1 ~= 0) then return nil end
  if i <= t[NANP] then return NAN end
  local off = t[OFF]
  local p = off + i - 1
  local b = t[BLK]
  local values = b[p >> BLOCK_SHIFT] or load_block(b, t[ID], p, off, n)
  return values[(p & BLOCK_MASK) + 1]
end
series_mt = {__index = series_index, __len = function(t) return t[LEN] end, __newindex = read_only,
             __pairs = view_pairs, __metatable = "read-only array"}
local function series_view(desc, lead, fmt)
  local len = desc & 131071
  local id = (desc >> 38) & 16777215
  return setmetatable_({[ID] = id, [OFF] = (desc >> 17) & 2097151, [LEN] = len, [NANP] = lead < len and lead or len,
                        [BLK] = blocks_of(id, fmt)}, series_mt)
end
local series_memo = {}  -- by ta function number: a backtest's whole-history results (emptied per backtest)
local series_candles = {}  -- the candle views of the running backtest (the keys of series_memo's tables)
-- A memoised indicator result in a backtest: three fields, the third shared by every view of the result,
-- {array id, NaN lead, blocks} (made once per result and run: the hot path allocates one small table).
local result_mt = {__index = function(t, i)
  local n = t[LEN]
  if i ~= n and (type_(i) ~= "number" or i < 1 or i > n or i % 1 ~= 0) then return nil end
  local hit = t[HIT]
  if i <= hit[2] then return NAN end  -- i <= n here: the lead as the window sees it
  local off = t[OFF]
  local p = off + i - 1
  local b = hit[3]
  local values = b[p >> BLOCK_SHIFT] or load_block(b, hit[1], p, off, n)
  return values[(p & BLOCK_MASK) + 1]
end, __len = function(t) return t[LEN] end, __newindex = read_only, __pairs = view_pairs, __metatable = "read-only array"}
local function is_view(mt)
  return mt == view_mt or mt == series_mt or mt == result_mt or mt == candle_view_mt or (type_(mt) == "table" and rawget_(mt, MAT) == true)
end
-- ...and the host takes them back as TAG | descriptor, and resolves them in the runtime's own table of
-- the arrays it handed it (sandbox.py): a descriptor names nothing the runtime was not given. A number
-- as large as TAG goes over as a float, so the host never takes a strategy's number for a descriptor.
-- A plain table of numbers becomes an array of the runtime's own first (host_array).
local CONVERT = 32  -- instructions per value the host reads from a plain table (about 120 ns)
local function all_numbers(x, n)  -- raw reads: no metamethod (no code of the strategy's) runs here
  for i = 1, n do
    if type_(rawget_(x, i)) ~= "number" then return false end
  end
  return true
end
local function id_of(x)
  local t = type_(x)
  if t == "table" then
    local d = rawget_(x, DESC)
    if d then return d end
    local id = rawget_(x, ID)
    if id then
      local len = rawget_(x, LEN)
      if len == nil then return TAG | (id << 38) | (win_off << 17) | win_len end  -- a backtest's candle view
      return TAG | (id << 38) | ((rawget_(x, OFF) or 0) << 17) | len
    end
    local hit = rawget_(x, HIT)  -- a memoised backtest result (result_mt)
    if hit then return TAG | (hit[1] << 38) | (rawget_(x, OFF) << 17) | rawget_(x, LEN) end
    local n = rawlen_(x)
    if n > MAX_TA_TABLE then error_("an array passed to ta holds at most 100,000 values", 3) end
    -- checked here, where a string is not copied: the host would convert each one, whatever its length
    if not all_numbers(x, n) then error_("an array passed to ta must hold numbers only", 3) end
    charge(CONVERT * n)  -- the host reads the numbers: work the hook does not see
    return host_array(x, n)
  elseif t == "number" then
    if x >= TAG then return x + 0.0 end
    return x
  elseif t == "nil" or t == "boolean" then
    return x
  end
  error_("ta functions take arrays and numbers, not a " .. t, 3)
end

-- Lua's pattern matcher backtracks in C: a subject of n characters costs up to about n ^ (q + 1)
-- steps, q the number of repeated items (*, +, -) followed by more pattern ('?' doubles). Patterns
-- whose bound exceeds PATTERN_BUDGET on the given subject are refused before they run.
local PATTERN_BUDGET = 2e7
local string_byte, string_sub = string.byte, string.sub
local function set_end(p, i, len)   -- p[i] is '['; the index of its closing ']'
  i = i + 1
  if string_byte(p, i) == 94 then i = i + 1 end        -- '^'
  if string_byte(p, i) == 93 then i = i + 1 end        -- a leading ']' is literal
  while i <= len do
    local c = string_byte(p, i)
    if c == 37 then i = i + 2                            -- '%x'
    elseif c == 93 then return i
    else i = i + 1 end
  end
  return len
end
local function pattern_cost(p, n)
  local len = #p
  local i, cost = 1, n
  if string_byte(p, 1) == 94 then i, cost = 2, 1 end   -- '^' anchors: one start position
  while i <= len do
    local c = string_byte(p, i)
    local last = i                                       -- the item is p[i..last]
    if c == 37 then                                      -- '%'
      local d = string_byte(p, i + 1)
      if d == 98 then last = i + 3 cost = cost * n       -- %bxy scans the subject
      elseif d == 102 then last = set_end(p, i + 2, len) -- %f[set]
      elseif d and d >= 49 and d <= 57 then last = i + 1 cost = cost * n  -- %1..%9 compare a capture
      else last = i + 1 end
    elseif c == 91 then last = set_end(p, i, len)        -- '[set]'
    end
    local q = string_byte(p, last + 1)
    if q == 42 or q == 43 or q == 45 then
      local rest = last + 2
      -- a repeated last item (without '$' after it) expands once and never backtracks
      if rest <= len and not (rest == len and string_byte(p, rest) == 36) then cost = cost * n end
      i = rest
    elseif q == 63 then cost = cost * 2 i = last + 2
    else i = last + 1 end
    if cost > PATTERN_BUDGET then return cost end
  end
  return cost
end

-- What a C function is about to work on: a string's length (a number is formatted in a few bytes).
local function slen(x)
  local t = type_(x)
  if t == "string" then return #x end
  if t == "number" then return 24 end
  return 0
end
-- How many of the positions i..j (negative: from the end; j defaults to i) a string of length l has:
-- the number of values string.byte and utf8.codepoint are about to return.
local function span(l, i, j)
  i = i or 1
  j = j or i
  if type_(i) ~= "number" or type_(j) ~= "number" then return 0 end
  if i < 0 then i = l + i + 1 end
  if j < 0 then j = l + j + 1 end
  if i < 1 then i = 1 end
  if j > l then j = l end
  return j >= i and j - i + 1 or 0
end
local function strings_size(n, ...)  -- the total length of the string arguments
  local size = 0
  if n <= 8 then
    for i = 1, n do
      local v = (select_(i, ...))
      if type_(v) == "string" then size = size + #v end
    end
  else
    charge(n)
    local a = {...}
    for i = 1, n do
      local v = a[i]
      if type_(v) == "string" then size = size + #v end
    end
  end
  return size
end

-- The wrappers call the library functions as fields (STR.byte(...)): an argument error then names the
-- function ("bad argument #1 to 'byte'"), as it would unwrapped.
local STR, TBL, UTF, OSL = {}, {}, {}, {}
for k, v in pairs(string) do STR[k] = v end
for k, v in pairs(table) do TBL[k] = v end
for k, v in pairs(utf8) do UTF[k] = v end
OSL.date, OSL.time, OSL.tostring, OSL.tonumber, OSL.select = os.date, os.time, tostring, tonumber, select

local S = {}
for k, v in pairs(string) do S[k] = v end
S.dump = nil
S.rep = function(s, n, sep)
  local len = #tostring_(s) * (n or 0) + (sep and #sep * math.max((n or 0) - 1, 0) or 0)
  if len > MAX_STRING then error_("string.rep result too large (" .. len .. " bytes, limit " .. MAX_STRING .. ")", 2) end
  if len > 0 then charge((n or 0) // 2 + len // 8) end   -- one copy per repetition (~2 ns), the bytes
  return STR.rep(s, n, sep)
end
-- A pattern call whose backtracking bound is large is timed and charged by the time it took (the bound
-- is a worst case: "%d+:" on 4,000 characters of text is bounded by 16 million steps and takes a few
-- thousand); gmatch, whose work happens in its iterator, is timed step by step.
local MEASURE_ABOVE = 1e6
local PER_SECOND = 2.5e8  -- instructions of the budget in a second of work (about 4 ns each)
local function charge_since(t0, ...)
  charge((os_clock() - t0) * PER_SECOND // 1)
  return ...
end
-- The caps and the charge of a pattern function; answers the subject and pattern (numbers made text)
-- and whether the call is to be timed.
local function pattern_check(name, s, p, plain)
  local timed = false
  if type_(s) == "number" then s = tostring_(s) end
  if type_(s) == "string" then
    if #s > MAX_SUBJECT then error_("string." .. name .. ": subject longer than " .. MAX_SUBJECT, 3) end
    if type_(p) == "number" then p = tostring_(p) end
    if type_(p) == "string" then
      if #p > MAX_PATTERN then error_("string." .. name .. ": pattern longer than " .. MAX_PATTERN, 3) end
      if not plain then
        local bound = pattern_cost(p, #s + 1)
        if bound > PATTERN_BUDGET then
          error_("string." .. name .. ": pattern too complex for a subject of " .. #s ..
                 " characters (it could backtrack for minutes); use a shorter subject or fewer repetitions", 3)
        end
        timed = bound > MEASURE_ABOVE
      end
      charge(#s // 4 + #s * #p // 16)  -- comparing the pattern at each position of the subject
    end
  end
  return s, p, timed
end
S.find = function(s, p, init, plain)
  local timed
  s, p, timed = pattern_check("find", s, p, plain)
  if timed then return charge_since(os_clock(), STR.find(s, p, init, plain)) end
  return STR.find(s, p, init, plain)
end
S.match = function(s, p, init)
  local timed
  s, p, timed = pattern_check("match", s, p, false)
  if timed then return charge_since(os_clock(), STR.match(s, p, init)) end
  return STR.match(s, p, init)
end
S.gmatch = function(s, p, init)
  local timed
  s, p, timed = pattern_check("gmatch", s, p, false)
  local step = STR.gmatch(s, p, init)
  if not timed then return step end
  return function() return charge_since(os_clock(), step()) end
end
S.gsub = function(s, p, repl, n)
  local timed
  s, p, timed = pattern_check("gsub", s, p, false)
  local t0 = timed and os_clock()
  local r, k = STR.gsub(s, p, repl, n)
  if t0 then charge_since(t0) end
  if k > 256 then charge(4 * k + #r // 8) end   -- the replacements it made and copied
  return r, k
end
S.byte = function(s, i, j)
  local n = span(slen(s), i, j)
  if n > 256 then charge(2 * n) end
  return STR.byte(s, i, j)
end
S.char = function(...)
  local n = select_("#", ...)
  if n > 256 then charge(2 * n) end
  return STR.char(...)
end
S.format = function(fmt, ...)
  local size = slen(fmt) + strings_size(select_("#", ...), ...)
  if size > 256 then
    -- %q escapes byte by byte (up to about 50 ns for each), the rest copies
    if type_(fmt) == "string" and STR.find(fmt, "%q", 1, true) then size = size * 48 end
    charge(size // 4)
  end
  local r = STR.format(fmt, ...)
  if #r > 4096 then charge(#r // 8) end   -- what __tostring metamethods made
  return r
end
-- Work that grows with the input string: charged before, by its length.
S.upper = function(s)
  local n = slen(s)
  if n > 4096 then charge(n // 2) end
  return STR.upper(s)
end
S.lower = function(s)
  local n = slen(s)
  if n > 4096 then charge(n // 2) end
  return STR.lower(s)
end
S.reverse = function(s)
  local n = slen(s)
  if n > 4096 then charge(n // 4) end
  return STR.reverse(s)
end
S.sub = function(s, i, j)
  local r = STR.sub(s, i, j)
  if #r > 4096 then charge(#r // 8) end
  return r
end
-- string.pack/unpack/packsize: a format of at most MAX_FORMAT characters, and the bytes charged.
local function format_check(name, fmt, ...)
  if type_(fmt) == "string" and #fmt > MAX_FORMAT then
    error_("string." .. name .. ": format longer than " .. MAX_FORMAT .. " characters", 3)
  end
  local size = 4 * slen(fmt) + strings_size(select_("#", ...), ...) // 8
  if size > 256 then charge(size) end
end
S.pack = function(fmt, ...)
  format_check("pack", fmt, ...)
  local r = STR.pack(fmt, ...)
  if #r > 4096 then charge(#r // 8) end   -- padding ("c" and "x" options) it wrote
  return r
end
S.unpack = function(fmt, s, pos)
  format_check("unpack", fmt, s)
  return STR.unpack(fmt, s, pos)
end
S.packsize = function(fmt)
  format_check("packsize", fmt)
  return STR.packsize(fmt)
end
getmetatable_("").__index = S   -- ("x"):rep(...) must meet the same caps
-- Arithmetic on strings ("10" + 1) converts them in C, whatever their length: charged too.
do
  local smt = getmetatable_("")
  for _, event in ipairs({"__add", "__sub", "__mul", "__div", "__mod", "__pow", "__unm", "__idiv"}) do
    local f = smt[event]
    if f then
      smt[event] = function(a, b)
        local n = slen(a) + slen(b)
        if n > 256 then charge(n // 2) end
        return f(a, b)
      end
    end
  end
end

local T = {}
for k, v in pairs(table) do T[k] = v end
local rawlen_, math_log = rawlen, math.log
local function count(t) return type_(t) == "table" and rawlen_(t) or 0 end
T.sort = function(t, cmp)
  local n = count(t)
  if n > 1 then charge(4 * n * (math_log(n, 2) // 1 + 1)) end
  return TBL.sort(t, cmp)
end
T.concat = function(t, sep, i, j)
  local n = (type_(j) == "number" and j or count(t)) - (type_(i) == "number" and i or 1) + 1
  if n > 0 then charge(4 * n) end
  local r = TBL.concat(t, sep, i, j)
  if #r > 4096 then charge(#r // 8) end
  return r
end
T.unpack = function(t, i, j)
  local n = (j or count(t)) - (i or 1) + 1
  if n > 0 then charge(4 * n) end
  return TBL.unpack(t, i, j)
end
T.pack = function(...)
  local n = select_("#", ...)
  if n > 256 then charge(n) end
  return TBL.pack(...)
end
T.move = function(a1, f, e, t, a2)
  if type_(e) == "number" and type_(f) == "number" and e >= f then charge(2 * (e - f + 1)) end
  return TBL.move(a1, f, e, t, a2)
end
T.insert = function(t, ...)
  if select_("#", ...) > 1 then charge(2 * count(t)) end    -- inserting at a position shifts the rest
  return TBL.insert(t, ...)
end
T.remove = function(t, ...)
  if select_("#", ...) > 0 then charge(2 * count(t)) end
  return TBL.remove(t, ...)
end
local M = {}
for k, v in pairs(math) do M[k] = v end
local U = {}
for k, v in pairs(utf8) do U[k] = v end
U.char = function(...)
  local n = select_("#", ...)
  if n > 256 then charge(2 * n) end
  return UTF.char(...)
end
U.codepoint = function(s, i, j, lax)
  local n = span(slen(s), i, j)
  if n > 256 then charge(2 * n) end
  return UTF.codepoint(s, i, j, lax)
end
U.len = function(s, i, j, lax)   -- decodes the string, about 2 ns a byte
  local n = slen(s)
  if n > 4096 then charge(n // 2) end
  return UTF.len(s, i, j, lax)
end
U.offset = function(s, n, i)
  local l = slen(s)
  if l > 4096 then charge(l // 2) end
  return UTF.offset(s, n, i)
end

local C = {
  create = function(f) return guard(co_create(f)) end,
  resume = coroutine.resume, yield = coroutine.yield, status = coroutine.status,
  isyieldable = coroutine.isyieldable, running = coroutine.running, close = coroutine.close,
}
C.wrap = function(f)
  local co = C.create(f)
  return function(...)
    local r = table.pack(co_resume(co, ...))
    if not r[1] then error_(r[2], 2) end
    return table.unpack(r, 2, r.n)
  end
end

-- What a strategy's environment holds. Every assignment gets an environment of its own (`new_env`), with
-- its own copies of the library tables: the eval worker runs all the assignments of one strategy version
-- in one Lua state, and a global, or a write to `math` or `ta`, of one of them must never reach another.
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = xpcall,
  rawequal = rawequal, rawlen = rawlen, rawget = rawget,
  os = {clock = os.clock},
  NaN = 0/0,
}
local LIBS = {string = S, table = T, math = M, utf8 = U, coroutine = C, os = env.os}
-- os.date calls strftime for each conversion of the format (about 0.2 us each): a format of at most
-- MAX_FORMAT characters, charged by its length.
env.os.date = function(fmt, t)
  fmt = fmt or "!%Y-%m-%dT%H:%M:%SZ"
  if type_(fmt) == "string" and #fmt > MAX_FORMAT then
    error_("os.date: format longer than " .. MAX_FORMAT .. " characters", 2)
  end
  charge(100 + 20 * slen(fmt))
  return OSL.date(fmt, t)
end
env.os.time = function(...)
  if (...) ~= nil then charge(500) end  -- normalising a date table (mktime): a few microseconds
  return OSL.time(...)
end
-- tostring copies a metatable's __name into its result, whatever its length; tonumber reads the whole
-- string (a numeral of a million digits takes milliseconds); select(i, ...) copies what it returns.
env.tostring = function(...)
  local r = OSL.tostring(...)
  if type_((...)) ~= "string" and #r > 256 then charge(#r // 4) end
  return r
end
env.tonumber = function(...)
  local x, base = ...
  if type_(x) == "string" and #x > 256 then charge(base == nil and #x // 2 or #x) end
  return OSL.tonumber(...)
end
env.select = function(n, ...)
  if n ~= "#" then
    local k = select_("#", ...)
    if k > 256 then charge(k) end
  end
  return OSL.select(n, ...)
end
-- Lua calls an xpcall message handler for a hook's error while hooks are still switched off (the
-- error is raised from inside the hook): a strategy's handler must never run then, or it could loop
-- unhooked. Past the limit, the error goes through untouched.
local xpcall_ = xpcall
env.xpcall = function(f, handler, ...)
  return xpcall_(f, function(e)
    if exhausted then return e end
    return handler(e)
  end, ...)
end
env.setmetatable = function(t, mt)
  if type_(mt) == "table" and rawget(mt, "__gc") ~= nil then error_("__gc metamethods are not allowed", 2) end
  return setmetatable_(t, mt)
end
env.getmetatable = function(x)
  if type_(x) == "string" then return nil end
  return getmetatable_(x)
end
-- print hands the host at most MAX_PRINT bytes, cut on a character boundary: the log keeps no more.
local tostring_charged = env.tostring
local function cut(s, n)
  while n > 0 do
    local b = string_byte(s, n + 1)
    if b == nil or b < 128 or b >= 192 then break end  -- s[n + 1] starts a character: cut before it
    n = n - 1
  end
  return string_sub(s, 1, n)
end
local function make_print(slot) return function(...)
  local n = select_("#", ...)
  charge(250 + n)  -- a crossing to the host, about a microsecond
  local args, parts, room = {...}, {}, MAX_PRINT
  for i = 1, n do
    local s = tostring_charged(args[i])
    if #s > room then s = cut(s, room) end
    parts[i] = s
    room = room - #s - 1
    if room <= 0 then break end
  end
  host_print(slot, table_concat(parts, "\t"))
end end
env.isnan = function(x) return x ~= x end

-- ta: every function goes to the host (TA-Lib), arrays travel as descriptors, results come back as a
-- count, then per array: descriptor, last value, the one before, NaN lead; or (0, value) for a plain
-- value. The lead is -1 for an ordinary array, and the warm-up length for a view into a backtest's
-- whole-history result.
local ta = {}
local table_unpack = table.unpack
-- The results of this candle's ta calls on live arrays and numbers, by function number, then argument
-- (nil as NIL): the assignments of a state evaluated on one candle ask for the same few indicators, and
-- a result is a read-only view, so the first call crosses to the host and the others are answered here.
-- Emptied when the candle changes (`set_candles`). Plain tables (the strategy's own, which it may change)
-- and backtest views are never keys: those calls go to the host every time.
local live_memo, memo_on = {}, false  -- on while `step_many` runs: one slot's calls alone seldom repeat
local NIL = {}
local function memo_key(x)
  if x == nil then return NIL end
  local t = type_(x)
  if t == "number" then
    if x ~= x then return nil end
    return x
  end
  if t == "table" and rawget_(x, DESC) ~= nil then return x end  -- a live view: DESC is private
  return nil
end
-- The memo's table for a call (k, a, b, ...) and the key of its result there; nil when it is not memoised.
local function memo_slot(k, a, b, ...)
  local nx = select_("#", ...)
  if nx > 2 then return nil end
  local ka, kb = memo_key(a), memo_key(b)
  if ka == nil or kb == nil then return nil end
  local node = live_memo[k]
  if node == nil then node = {} live_memo[k] = node end
  local at = node[ka]
  if at == nil then at = {} node[ka] = at end
  if nx == 0 then return at, kb end
  local kc = memo_key((...))
  if kc == nil then return nil end
  local next_node = at[kb]
  if next_node == nil then next_node = {} at[kb] = next_node end
  if nx == 1 then return next_node, kc end
  local kd = memo_key((select_(2, ...)))
  if kd == nil then return nil end
  local last_node = next_node[kc]
  if last_node == nil then last_node = {} next_node[kc] = last_node end
  return last_node, kd
end
local function result_view(d, last, prev, lead)
  if lead < 0 then return live_view(d, last, prev) end
  return series_view(d, lead)
end
local function wrap_results(n, ...)
  if n == 0 then return (...) end
  local rest = {...}
  local out = {}
  for k = 0, n - 1 do
    out[k + 1] = result_view(rest[4 * k + 1], rest[4 * k + 2], rest[4 * k + 3], rest[4 * k + 4])
  end
  return table_unpack(out, 1, n)
end
for k, name in ipairs(ta_names) do
  -- one closure per function, made once: the common one- and two-argument calls avoid table packing,
  -- and the host gets the function's number, not its name (strings cost more to cross over)
  if ta_multi[name] then
    local function remember(node, key, ...)
      if node ~= nil and ... ~= nil then node[key] = table.pack(...) end
      return ...
    end
    ta[name] = function(a, b, ...)
      local node, key
      if memo_on then
        node, key = memo_slot(k, a, b, ...)
        if node ~= nil then
          local hit = node[key]
          if hit ~= nil then return table_unpack(hit, 1, hit.n) end
        end
      end
      local rest = {...}
      for i = 1, #rest do rest[i] = id_of(rest[i]) end
      return remember(node, key, wrap_results(host_ta(k, id_of(a), id_of(b), table_unpack(rest))))
    end
  else
    local memo = {}  -- backtests: whole-history results by (input array id, period); see series_memo
    series_memo[k] = memo
    ta[name] = function(a, b, ...)
      -- A backtest's candle view (c.close: one table all run long, sliding along the history) with a
      -- plain number (or nothing) after it: the host answers the same whole-history result for every
      -- candle, only the view's offset and length change, so after the first answer the view is made
      -- here without crossing to the host. memo[a] misses for anything but a candle view.
      local byview = memo[a]
      if byview ~= nil then
        local hit = byview[b == nil and memo or b]
        if hit ~= nil and select_("#", ...) == 0 then
          return setmetatable_({[HIT] = hit, [OFF] = win_off, [LEN] = win_len}, result_mt)
        end
      end
      local node, key
      if memo_on then
        node, key = memo_slot(k, a, b, ...)
        if node ~= nil then
          local hit = node[key]
          if hit ~= nil then return hit end
        end
      end
      local n, d, last, prev, lead
      if select_("#", ...) == 0 then
        if series_candles[a] and (b == nil or (type_(b) == "number" and b == b)) then
          n, d, last, prev, lead = host_ta(k, id_of(a), id_of(b))
          if n ~= 0 and lead >= 0 then
            local rid = (d >> 38) & 16777215
            if not byview then byview = {} memo[a] = byview end
            byview[b == nil and memo or b] = {rid, lead, blocks_of(rid)}
          end
        else
          n, d, last, prev, lead = host_ta(k, id_of(a), id_of(b))
        end
      else
        local rest = {...}
        for i = 1, #rest do rest[i] = id_of(rest[i]) end
        n, d, last, prev, lead = host_ta(k, id_of(a), id_of(b), table_unpack(rest))
      end
      local r
      if n == 0 then r = d
      elseif lead < 0 then r = live_view(d, last, prev)
      else return series_view(d, lead) end
      if node ~= nil and r ~= nil then node[key] = r end
      return r
    end
  end
end
local function ta_missing(_, name) error_("ta." .. tostring_(name) .. " does not exist", 2) end
local function ta_write() error_("ta is read-only", 2) end

local function copy(t)
  local r = {}
  for k, v in next_, t do r[k] = v end
  return r
end
-- A fresh environment for the assignment in `slot`: its own globals, library tables and print.
local function new_env(slot)
  local e = copy(env)
  for name, lib in next_, LIBS do e[name] = copy(lib) end
  e.ta = setmetatable_(copy(ta), {__index = ta_missing, __newindex = ta_write})
  e.print = make_print(slot)
  e._G = e
  return e
end

local function compile(code, e)
  if type_(code) ~= "string" then return nil, "code must be text" end
  return load(code, "=strategy", "t", e)
end

-- Run f(...) in a fresh hooked coroutine with fresh budgets; returns ok, results... or false, message.
-- The wall-clock deadline starts at the first hook: reading the clock costs a system call.
-- Errors and decisions are turned into plain values here, inside the sandbox: the host must never
-- touch a strategy's table or error object, whose metamethods would run without the hook.
local debug_getinfo = debug.getinfo
local function where(co)  -- "strategy:<line>: " of the innermost strategy frame of a failed coroutine
  for level = 0, 100 do
    local info = debug_getinfo(co, level, "Sl")
    if not info then break end
    if info.source == "=strategy" and info.currentline > 0 then return "strategy:" .. info.currentline .. ": " end
  end
  return ""
end
local function error_text(co, e)
  local t = type_(e)
  if t == "string" then return e end
  if t == "number" then return where(co) .. tostring_(e) end
  if t == "userdata" then return where(co) .. tostring_(e) end  -- the host's own errors (ta, Python)
  if t == "nil" then return where(co) .. "error(nil)" end
  return where(co) .. "error called with a " .. t .. " value; pass a message: error(\"what went wrong\")"
end
-- A decision's `plot = {name = number, ...}`: the values of the strategy's own series at this candle, drawn
-- on the chart. At most PLOT_MAX names, each a name (letters, digits, _; at most 32 characters), each value
-- a number that is not infinite (NaN: no point at this candle, as an indicator's warm-up). Read raw with
-- `next` (no metamethod of the strategy's runs here, outside the hook), so a table of a million keys costs
-- no more than PLOT_MAX + 1 steps.
local PLOT_MAX = 8
local PLOT_NAME = 32
local HUGE_ = math.huge
local plot_names_ok = {}  -- names checked already (the strategy's memory: it returns the same few)
local plot_cols, plot_names, plot_count = {}, {}, 0  -- a backtest's plot columns (reset by `candles`)
local function plot_name_text(k)
  if type_(k) == "string" then
    return "'" .. (STR.gsub(string_sub(k, 1, 40), "[^%w_%-%. ]", "?")) .. (#k > 40 and "...'" or "'")
  end
  return "a " .. type_(k)
end
-- The plot as the host takes it: the names joined by commas, then the values in that order; or false and
-- why it is not a plot (the host reports it as the strategy's error).
local function plot_out(pl)
  if type_(pl) ~= "table" then
    return false, "plot must be a table of series, {name = value, ...}, got a " .. type_(pl)
  end
  local names, values, n = {}, {}, 0
  local k, v = next_(pl)
  while k ~= nil do
    n = n + 1
    if n > PLOT_MAX then return false, "plot holds at most " .. PLOT_MAX .. " series" end
    if type_(k) ~= "string" then return false, "plot: a series needs a name, not " .. plot_name_text(k) end
    if not plot_names_ok[k] then
      if #k > PLOT_NAME or not STR.find(k, "^[%a_][%w_]*$") then
        return false, "plot: " .. plot_name_text(k) .. " is not a series name (letters, digits and _, at most "
          .. PLOT_NAME .. " characters)"
      end
      plot_names_ok[k] = true
    end
    if type_(v) ~= "number" then return false, "plot." .. k .. " must be a number, got a " .. type_(v) end
    if v == HUGE_ or v == -HUGE_ then return false, "plot." .. k .. " must be a finite number, got " .. tostring_(v) end
    names[n], values[n] = k, v
    k, v = next_(pl, k)
  end
  return table_concat(names, ","), table.unpack(values, 1, n)
end
-- Whether a plot is fine, without building anything (a backtest's hot path); plot_out says why not.
local function plot_good(pl)
  if type_(pl) ~= "table" then return false end
  local n = 0
  local k, v = next_(pl)
  while k ~= nil do
    n = n + 1
    if n > PLOT_MAX or not plot_names_ok[k] then
      if n > PLOT_MAX or type_(k) ~= "string" or #k > PLOT_NAME or not STR.find(k, "^[%a_][%w_]*$") then return false end
      plot_names_ok[k] = true
    end
    if type_(v) ~= "number" or v == HUGE_ or v == -HUGE_ then return false end
    k, v = next_(pl, k)
  end
  return true
end

local function finish(co, ok, a, ...)
  if exhausted then return false, LIMIT_MARK .. exhausted end
  if not ok then return false, error_text(co, a) end
  if type_(a) == "table" then
    -- {position=, size=, note=, stop_loss=, take_profit=, trailing_stop=, limit=, expire=}, read raw;
    -- the tenth value marks it; a plot follows it (see plot_out)
    local pl = rawget_(a, "plot")
    if pl ~= nil then
      return true, rawget_(a, "position"), rawget_(a, "size"), rawget_(a, "note"), rawget_(a, "stop_loss"),
        rawget_(a, "take_profit"), rawget_(a, "trailing_stop"), rawget_(a, "limit"), rawget_(a, "expire"), true,
        plot_out(pl)
    end
    return true, rawget_(a, "position"), rawget_(a, "size"), rawget_(a, "note"), rawget_(a, "stop_loss"),
      rawget_(a, "take_profit"), rawget_(a, "trailing_stop"), rawget_(a, "limit"), rawget_(a, "expire"), true
  end
  return true, a
end
local function run(f, ...)
  used, exhausted, deadline = 0, false, nil
  local co = guard(co_create(f))
  return finish(co, co_resume(co, ...))
end

-- The candle table: open, high, low, close, volume, time, each a view made on first use (most
-- strategies read one or two of them). ARGS holds the host's descriptors and the views made so far.
local ARGS = {}
local FIELDS = {open = 1, high = 2, low = 3, close = 4, volume = 5, time = 6}
local NAMES = {"open", "high", "low", "close", "volume", "time"}
local candle_mt = {
  __index = function(t, k)
    local a = rawget_(t, ARGS)
    local v = a[k]
    if v == nil then
      local f = FIELDS[k]
      if not f then return nil end
      v = live_view(a[f], a[5 + 2 * f], a[6 + 2 * f], f == 6 and "=j" or nil)
      a[k] = v
    end
    return v
  end,
  __newindex = function() error_("the candle table is read-only", 2) end,
  __pairs = function(t)
    local i = 0
    return function() i = i + 1 local k = NAMES[i] if k then return k, t[k] end end, t, nil
  end,
  __metatable = "read-only candles",
}

-- A backtest's candles: views of the whole history that `series` slides along it; the candle table's
-- __index is the table of views itself (no function call per c.close).
local series_candle_mt = {__newindex = candle_mt.__newindex, __pairs = candle_mt.__pairs, __metatable = "read-only candles"}
local function candles(o, h, l, c, v, t)
  series_blocks = {}
  for _, memo in pairs(series_memo) do for id in pairs(memo) do memo[id] = nil end end
  local views = {candle_view(o), candle_view(h), candle_view(l), candle_view(c), candle_view(v),
                 candle_view(t, "=j")}
  series_candles = {}
  for i = 1, 6 do series_candles[views[i]] = true end
  plot_cols, plot_names, plot_count = {}, {}, 0
  local a = {}
  for i = 1, 6 do a[NAMES[i]] = views[i] end
  series_candle_mt.__index = a
  return setmetatable_({}, series_candle_mt), views
end

-- One live evaluation: decide(c, params) on new candles (descriptors of the open, high, low, close,
-- volume and time arrays, then the last two values of each), or on the same ones when called without.
-- decide runs in one hooked coroutine that lives from one evaluation to the next (a new coroutine per
-- evaluation costs more than a simple strategy): it yields each decision behind a private marker. An
-- error, a limit, or a strategy's own yield ends it, and the next evaluation starts a fresh one.
-- A state holds one assignment or many (the eval worker's: all those of one strategy version), each in a
-- slot: its decide, on_tick, params and their coroutines, by slot number.
local current  -- the candle table of the window being evaluated: read-only, shared by the slots
local decide_of, params_of, live_of, on_tick_of, tick_of = {}, {}, {}, {}, {}
local LIVE = {}
local co_yield = coroutine.yield
local function prepare(slot, f, p, g)
  decide_of[slot], params_of[slot], live_of[slot], on_tick_of[slot], tick_of[slot] = f, p, nil, g, nil
end
local function forget(slot) prepare(slot, nil, nil, nil) end
local function set_candles(...)
  current = setmetatable_({[ARGS] = {...}}, candle_mt)
  live_memo = {}
end
local function live_start(slot)
  local f = decide_of[slot]
  return guard(co_create(function(c, p)
    while true do c, p = co_yield(LIVE, f(c, p)) end
  end))
end
local function live_finish(co, slot, ok, mark, ...)
  if ok and mark == LIVE and not exhausted then return finish(co, true, ...) end
  live_of[slot] = nil
  if ok and not exhausted then
    return false, where(co) .. "decide yielded: coroutine.yield works only inside a coroutine the strategy made"
  end
  return finish(co, ok, mark, ...)
end
local function run_slot(slot)
  used, exhausted, deadline = 0, false, nil
  local co = live_of[slot]
  if co == nil or co_status(co) ~= "suspended" then
    co = live_start(slot)
    live_of[slot] = co
  end
  return live_finish(co, slot, co_resume(co, current, params_of[slot]))
end
local function evaluate(slot, ...)
  if ... then set_candles(...) end
  return run_slot(slot)
end

-- Many slots on one candle in one call from the host: `nd` candle descriptors (as `evaluate` takes them;
-- 0 for the candle of the last call), then the slots, then (with `progress`, the host's watchdog: told
-- before each slot starts) the mark of each. Every slot gets fresh budgets, as a call of its own would,
-- and one slot's error or limit ends that slot's evaluation only. Returns a letter per slot (l, s, n: it
-- returned that position; x: anything else), then for each x in order the count of what `evaluate` would
-- have returned and those values (-1 and nothing: a text in them is not UTF-8).
local CODES = {long = "l", short = "s", neutral = "n"}
local utf8_len = UTF.len
local function step_many(progress, nd, ...)
  local args = {...}
  if nd > 0 then set_candles(table_unpack(args, 1, nd)) end
  local n = select_("#", ...) - nd
  if progress then n = n // 2 end
  local letters, out, no = {}, {}, 0
  local j
  memo_on = true
  local function take(ok, a, ...)
    if ok == true and select_("#", ...) == 0 then
      local code = CODES[a]
      if code then letters[j] = code return end
    end
    letters[j] = "x"
    local vals = table.pack(ok, a, ...)
    local m = vals.n
    for i = 1, m do
      local v = vals[i]
      if type_(v) == "string" and not utf8_len(v) then m = -1 break end
    end
    out[no + 1] = m
    no = no + 1
    for i = 1, m do out[no + i] = vals[i] end
    if m > 0 then no = no + m end
  end
  for i = 1, n do
    j = i
    if progress then progress(0, args[nd + n + i]) end
    take(run_slot(args[nd + i]))
  end
  memo_on = false
  return table_concat(letters), table_unpack(out, 1, no)
end

-- One tick evaluation: on_tick(t, c, params), t made here, fresh for every call, from the host's numbers:
-- bid, ask, bid_size, ask_size, last, time, position, cash, the number of resting quotes, then their side,
-- price and amount each, then (when the window is new) the candle descriptors as `evaluate` takes them.
-- on_tick has a hooked coroutine of its own that lives from one tick to the next, as decide's does.
-- Returns what `finish` returns, or for a table with a `quotes` field: true, the number of quotes, then
-- side, price, amount of the first and of the second (read raw; the host judges the values); or true,
-- false, the reason, and five nils when the table is not a list of at most two quotes of known fields.
local QUOTE_FIELDS = {side = true, price = true, amount = true}
local POSITION_FIELDS = {position = true, size = true, note = true, stop_loss = true, take_profit = true,
                         trailing_stop = true, limit = true, expire = true}
local function key_text(k)  -- a key as a message shows it: a short string, or its type
  if type_(k) == "string" then
    -- cut, and anything but plain characters shown as '?': the message crosses to the host as text
    local shown = (STR.gsub(string_sub(k, 1, 40), "[^%w_%-%. ]", "?"))
    return "'" .. shown .. (#k > 40 and "...'" or "'")
  end
  if type_(k) == "number" then return tostring_(k) end
  return "a " .. type_(k) .. " key"
end
local function bad_quotes(reason) return true, false, reason, nil, nil, nil, nil, nil end
-- Only raw reads and at most a few steps of `next` per table: no strategy code runs here (outside the
-- hook), and a table of a million keys costs no more than a small one.
local function quotes_of(r, q)
  local k = next_(r)
  while k ~= nil do
    if k ~= "quotes" then
      if POSITION_FIELDS[k] then
        return bad_quotes("on_tick returned quotes and " .. k .. ": return either {quotes = {...}} or a position")
      end
      return bad_quotes("unknown field " .. key_text(k) .. " in the table on_tick returned (it holds only quotes)")
    end
    k = next_(r, k)
  end
  if type_(q) ~= "table" then
    return bad_quotes("quotes must be a list of {side =, price =, amount =} tables, got a " .. type_(q))
  end
  local n = rawlen_(q)
  if n > 2 then return bad_quotes("at most 2 quotes (one buy, one sell), got " .. n) end
  k = next_(q)
  while k ~= nil do
    if type_(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then
      return bad_quotes("quotes must be a list {q1, q2}, not a table with the key " .. key_text(k))
    end
    k = next_(q, k)
  end
  local s1, p1, a1, s2, p2, a2
  for i = 1, n do
    local e = rawget_(q, i)
    if type_(e) ~= "table" then
      return bad_quotes("quote " .. i .. " must be a table {side =, price =, amount =}, got a " .. type_(e))
    end
    k = next_(e)
    while k ~= nil do
      if not QUOTE_FIELDS[k] then
        return bad_quotes("unknown field " .. key_text(k) .. " in quote " .. i .. " (a quote has side, price and amount)")
      end
      k = next_(e, k)
    end
    if i == 1 then
      s1, p1, a1 = rawget_(e, "side"), rawget_(e, "price"), rawget_(e, "amount")
    else
      s2, p2, a2 = rawget_(e, "side"), rawget_(e, "price"), rawget_(e, "amount")
    end
  end
  return true, n, s1, p1, a1, s2, p2, a2
end
local function tick_start(slot)
  local f = on_tick_of[slot]
  return guard(co_create(function(t, c, p)
    while true do t, c, p = co_yield(LIVE, f(t, c, p)) end
  end))
end
local function tick_finish(co, slot, ok, mark, r, ...)
  if ok and mark == LIVE and not exhausted then
    if type_(r) == "table" then
      local q = rawget_(r, "quotes")
      if q ~= nil then return quotes_of(r, q) end
    end
    return finish(co, true, r)
  end
  tick_of[slot] = nil
  if ok and not exhausted then
    return false, where(co) .. "on_tick yielded: coroutine.yield works only inside a coroutine the strategy made"
  end
  return finish(co, ok, mark, r, ...)
end
local function tick(slot, bid, ask, bid_size, ask_size, last, time, position, cash, nq, ...)
  local quotes = {}
  for i = 1, nq do
    local side, price, amount = select_(3 * i - 2, ...)
    quotes[i] = {side = side, price = price, amount = amount}
  end
  if select_("#", ...) > 3 * nq then set_candles(select_(3 * nq + 1, ...)) end
  local t = {bid = bid, ask = ask, bid_size = bid_size, ask_size = ask_size, last = last, time = time,
             position = position, cash = cash, quotes = quotes}
  used, exhausted, deadline = 0, false, nil
  local co = tick_of[slot]
  if co == nil or co_status(co) ~= "suspended" then
    co = tick_start(slot)
    tick_of[slot] = co
  end
  return tick_finish(co, slot, co_resume(co, t, current, params_of[slot]))
end

-- `next` on a view or the candle table would hand out the private keys above: walk them as pairs does.
local function guarded_next(t, k)
  local mt = debug_getmetatable(t)
  if mt == nil then return next_(t, k) end
  local v = is_view(mt)
  if v or mt == candle_mt or mt == series_candle_mt then
    local iter = mt.__pairs(t)
    if k == nil then return iter(t, v and 0 or nil) end
    if v then return iter(t, k) end
    local i = FIELDS[k]
    if not i then return nil end
    local name = NAMES[i + 1]
    if name then return name, t[name] end
    return nil
  end
  return next_(t, k)
end
env.next = guarded_next
-- pairs on a table without __pairs answers `next`: the raw one would walk the private keys of views.
local pairs_ = pairs
env.pairs = function(t)
  local f, s, i = pairs_(t)
  if f == next_ then f = guarded_next end
  return f, s, i
end

-- A backtest: slide the candle views along the history and call decide on each candle, in Lua, so
-- the host is crossed only by the indicators. One hooked coroutine runs many candles (a coroutine per
-- candle costs more than the SMA strategy itself), with fresh instruction and time budgets for each
-- candle as live. Positions come back as one string, a letter per candle (l, s, n); when the host asks
-- for them (want_extras), the extras of the candles whose table sets a size other than 1, exits or a
-- limit come back in a flat table of numbers (or false when there are none), seven per such candle: its
-- index (from 1), size, stop_loss, take_profit, trailing_stop, limit, expire (NaN where absent; a size
-- of 1 is absent). The host reads it with one table.unpack: Lua strings reach it decoded as text.
-- From candle plot_from on (false: never), the values of a table's plot come back the same way, three
-- numbers per value: the candle, the series' column (from 1, in the order the run first named them, at
-- most PLOT_MAX columns a run: later names are not recorded), the value (NaN is not recorded); with the
-- names of the columns, joined by commas.
-- Returns: the last candle done, true, names, plots, extras, positions; or the candle, false, names,
-- plots, extras, positions, "error", message; or the candle, false, names, plots, extras, positions,
-- "value", position, size, note, stop_loss, take_profit, trailing_stop, limit, expire, is_table and the
-- plot as plot_out gives it (when the table has one), when the host must judge a return value.
--
-- Without the hook (step 0) the runner proves instead that no candle can have gone past the limits the hook
-- enforces, so that the run is the hooked run, at about half its cost. It reads the CPU clock after each
-- batch of candles: every Lua instruction takes at least T_MIN of it, so a batch whose CPU time over T_MIN,
-- plus what the batch's C calls charged, stays within the instruction limit held no candle past it (nor past
-- the time limit, checked too). A batch that cannot be proved so, and any error, ends the run UNSURE: the
-- host then runs it again hooked, whose result is the run's (see StrategyRuntime.decide_series). The clock
-- is process time, so another thread's work only makes the proof stricter (the host runs it in a process of
-- its own: backtest/decided.py's Forked). Batches are sized to an eighth of the budget by the batch before;
-- a strategy whose single candle takes more than the budget is always run hooked.
-- T_MIN is a tenth of a nanosecond: the cheapest instruction measured on the project's machine took 1.3 ns
-- (an ADD in a numeric for loop), and no interpreter's dispatch takes less than a cycle.
local series  -- defined in the block below, with the runner's own locals (a function holds at most 200)
do
  local CODE = {long = "l", short = "s", neutral = "n"}
  local VALUE, DONE, UNSURE = {}, {}, {}  -- the runner's own yields and result: no strategy can make these tables
  local HUGE = math.huge
  local cur  -- the candle the runner is on
  -- Whether the hook-free batch that began at proof.t0 is proved within the limits (at `now`).
  local function proved(now)
    local e = now - proof.t0 - proof.host
    return e / proof.T_MIN + proof.spent <= limit and e <= time_limit
  end
  local function runner(f, c, params, views, first, last, lookback, buf, ext, rec, plot_from)
    local ne, nr = 0, 0
    local free = step == 0
    local size, upto = 1, first  -- the hook-free batch: how many candles, the last one
    local gc, kb = proof.gc, 0
    local bcap, ecap, rcap = 0, 0, 0  -- the room made in buf, ext and rec (hook-free)
    -- Make room in the array part of `t` (`used` entries in it, room for `cap`) for `need` entries, if it has
    -- not: filled, then emptied (Lua never shrinks an array part on its own), so that the entries the next
    -- batch appends cost no doubling. A doubling copies the table in C; at 57,000 extras a chunk that copy
    -- (and the new memory's page faults) took over 1 ms on a slow host, more than a batch may take to be proved.
    -- Returns the room now made.
    local function room(t, used, cap, need)
      if need <= cap then return cap end
      if need < cap * 2 then need = cap * 2 end
      for k = used + 1, need do t[k] = false end
      for k = used + 1, need do t[k] = nil end
      return need
    end
    if free then
      -- the collector runs between batches, not inside one: its work is C work, as the host's (and the hooked
      -- run does not count it either: Lua runs finalizers with hooks off), so it is timed out of the proof;
      -- each step does what the allocations of the batch before it would have made it do
      gc("stop")
      kb = gc("count")
      proof.t0, proof.spent, proof.host = os_clock(), 0, 0
    end
    for i = first, last do
      cur = i
      local off = i - lookback
      if off < 0 then off = 0 end
      win_off, win_len = off, i - off  -- what every candle view shows
      used, deadline = 0, nil
      local r = f(c, params)
      if exhausted then error_(LIMIT_MARK .. exhausted) end
      if free then
        proof.spent = proof.spent + used
        if i >= upto then
          local now = os_clock()
          if not proved(now) then return UNSURE end
          local took, eighth = now - proof.t0 - proof.host, limit * proof.T_MIN / 8
          if took * 2 <= eighth then size = size * 2
          elseif took > eighth then size = (size + 1) // 2 end
          if now - proof.beat > proof.beat_s then proof.beat = now host_beat() end
          local next_ = size + 1  -- the candles of the next batch, and what they may append
          bcap = room(buf, i - first + 1, bcap, i - first + 1 + next_)
          if ext then ecap = room(ext, ne, ecap, ne + 7 * next_) end
          if rec and i + next_ >= plot_from then rcap = room(rec, nr, rcap, nr + 3 * PLOT_MAX * next_) end
          local grew = gc("count") - kb
          if grew > 0 then gc("step", grew // 1 + 1) end
          kb = gc("count")
          proof.t0, proof.spent, proof.host, upto = os_clock(), 0, 0, i + size
        end
      end
      local code = CODE[r]  -- only the three strings are keys of CODE
      if code == nil then
        -- a table, read raw, its values checked as the host would; anything else, or a value out of
        -- range, goes to the host to be judged (with its messages)
        if type_(r) == "table" then
          local p, s, nt, sl, tp, ts, lm, ex, pl
          if debug_getmetatable(r) == nil then  -- no metatable: plain reads are raw, and cost no call
            p, s, nt, sl, tp, ts, lm, ex, pl = r.position, r.size, r.note, r.stop_loss, r.take_profit,
              r.trailing_stop, r.limit, r.expire, r.plot
          else
            p, s, nt = rawget_(r, "position"), rawget_(r, "size"), rawget_(r, "note")
            sl, tp, ts = rawget_(r, "stop_loss"), rawget_(r, "take_profit"), rawget_(r, "trailing_stop")
            lm, ex, pl = rawget_(r, "limit"), rawget_(r, "expire"), rawget_(r, "plot")
          end
          code = type_(p) == "string" and CODE[p] or nil
          local nty = type_(nt)
          if code == nil or not (s == nil or (type_(s) == "number" and s >= 0 and s <= 1))
             or not (nt == nil or nty == "string" or nty == "number")
             or not (sl == nil or (type_(sl) == "number" and sl > 0 and sl < 1))
             or not (tp == nil or (type_(tp) == "number" and tp > 0 and tp <= 100))
             or not (ts == nil or (type_(ts) == "number" and ts > 0 and ts < 1))
             or not (lm == nil or (type_(lm) == "number" and lm > 0 and lm < HUGE))
             or not (ex == nil or (lm ~= nil and type_(ex) == "number" and ex >= 1 and ex <= 10000 and ex % 1 == 0))
             or not (pl == nil or plot_good(pl)) then
            if free and not proved(os_clock()) then return UNSURE end
            if pl ~= nil then coroutine.yield(VALUE, p, s, nt, sl, tp, ts, lm, ex, true, plot_out(pl)) end
            coroutine.yield(VALUE, p, s, nt, sl, tp, ts, lm, ex, true)
          end
          if ext and ((s ~= nil and s ~= 1) or sl ~= nil or tp ~= nil or ts ~= nil or lm ~= nil) then
            ext[ne + 1] = i
            ext[ne + 2] = s ~= nil and s ~= 1 and s or NAN
            ext[ne + 3] = sl or NAN
            ext[ne + 4] = tp or NAN
            ext[ne + 5] = ts or NAN
            ext[ne + 6] = lm or NAN
            ext[ne + 7] = ex or NAN
            ne = ne + 7
          end
          if pl ~= nil and rec and i >= plot_from then
            local k, v = next_(pl)
            while k ~= nil do
              local col = plot_cols[k]
              if col == nil and plot_count < PLOT_MAX then
                plot_count = plot_count + 1
                col = plot_count
                plot_cols[k], plot_names[col] = col, k
              end
              if col ~= nil and v == v then
                rec[nr + 1], rec[nr + 2], rec[nr + 3] = i, col, v
                nr = nr + 3
              end
              k, v = next_(pl, k)
            end
          end
        else
          if free and not proved(os_clock()) then return UNSURE end
          coroutine.yield(VALUE, r, nil, nil, nil, nil, nil, nil, nil, false)
        end
      end
      buf[i - first + 1] = code
    end
    return DONE
  end
  -- The value a decide yielded itself (live: its coroutine's yield ends the evaluation with it), as the
  -- runner's VALUE hands it over.
  local function yielded(r)
    if type_(r) == "table" then
      local pl = rawget_(r, "plot")
      if pl ~= nil then
        return "value", rawget_(r, "position"), rawget_(r, "size"), rawget_(r, "note"), rawget_(r, "stop_loss"),
          rawget_(r, "take_profit"), rawget_(r, "trailing_stop"), rawget_(r, "limit"), rawget_(r, "expire"), true,
          plot_out(pl)
      end
      return "value", rawget_(r, "position"), rawget_(r, "size"), rawget_(r, "note"), rawget_(r, "stop_loss"),
        rawget_(r, "take_profit"), rawget_(r, "trailing_stop"), rawget_(r, "limit"), rawget_(r, "expire"), true
    end
    return "value", r, nil, nil, nil, nil, nil, nil, nil, false
  end
  local function series_end(co, last, buf, ext, rec, ok, what, ...)
    local extras = ext and ext[1] ~= nil and ext or false
    local plots = rec and rec[1] ~= nil and rec or false
    local names = plot_count > 0 and table_concat(plot_names, ",") or false
    local letters = table_concat(buf)
    if step == 0 then proof.gc("restart") end
  if step == 0 and not (ok and (what == DONE or what == VALUE)) then
      -- hook-free: an error, a limit or decide's own yield may differ from the hooked run's (a candle of the
      -- unproved batch may have gone past a limit first); an unproved batch ends the run (see runner)
      return cur, false, names, plots, extras, letters, "unsure"
    end
    if exhausted then return cur, false, names, plots, extras, letters, "error", LIMIT_MARK .. exhausted end
    if not ok then return cur, false, names, plots, extras, letters, "error", error_text(co, what) end
    if what == DONE and co_status(co) == "dead" then return last, true, names, plots, extras, letters end
    if what == VALUE and co_status(co) == "suspended" then
      return cur, false, names, plots, extras, letters, "value", ...
    end
    -- decide itself yielded: live, its coroutine's yield ends the evaluation with the values yielded
    return cur, false, names, plots, extras, letters, yielded(what)
  end
  function series(f, c, views, params, first, last, lookback, want_extras, plot_from)
    local buf, ext = {}, want_extras and {} or false
    local rec = plot_from and {} or false
    local co = guard(co_create(runner))
    exhausted = false
    return series_end(co, last, buf, ext, rec,
      co_resume(co, f, c, params, views, first, last, lookback, buf, ext, rec, plot_from or 0))
  end
end

return {compile = compile, run = run, new_env = new_env, candles = candles, series = series, mark = LIMIT_MARK,
        prepare = prepare, forget = forget, step = evaluate, many = step_many, tick = tick, charge = host_charge}
