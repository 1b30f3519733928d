-- The sandbox bootstrap, run once per runtime with host functions as arguments.
-- It builds the strategy's environment from safe functions only, installs the instruction and time
-- hook on every coroutine the strategy can run in, and returns the functions the host calls.
local host_get, host_ta, host_print, limit, step, time_limit, ta_names = ...

local debug_sethook, os_clock, co_create, co_resume, co_status = debug.sethook, os.clock, coroutine.create, coroutine.resume, coroutine.status
local string_rep, table_concat, setmetatable_, getmetatable_ = string.rep, table.concat, setmetatable, getmetatable
local type_, error_, tostring_, select_ = type, error, tostring, select

local MAX_STRING = 1048576       -- string.rep result cap (bytes)
local MAX_SUBJECT = 100000       -- pattern functions: subject cap
local MAX_PATTERN = 256          -- pattern functions: pattern cap

local used, deadline, exhausted = 0, 0, false
local LIMIT_MARK = "\0tw-limit:"

local function every_instruction()
  error_(LIMIT_MARK .. (exhausted or "instructions"), 2)
end

local function hook()
  used = used + step
  if used > limit then
    exhausted = "instructions"
  elseif os_clock() > deadline then
    exhausted = "time"
  end
  if exhausted then
    -- From now on every instruction raises, so pcall cannot swallow the limit.
    debug_sethook(every_instruction, "", 1)
    error_(LIMIT_MARK .. exhausted, 2)
  end
end

local function guard(co) debug_sethook(co, hook, "", step) return co end

-- Read-only views of host arrays (candles and indicator results): shared, never copied into Lua.
-- A view keeps its host id, offset and length under private keys no strategy can name. The offset
-- lets a backtest slide one view along the whole history instead of making new tables every candle.
local ID, LEN, OFF, NANP = {}, {}, {}, {}
local NAN = 0/0
local rawget_, rawset_, next_ = rawget, rawset, next
local view_mt = {
  __index = function(t, i)
    if type_(i) == "number" and i >= 1 and i <= rawget_(t, LEN) then
      if i <= rawget_(t, NANP) then return NAN end  -- the warm-up of a backtest's whole-history indicator
      return host_get(rawget_(t, ID), rawget_(t, OFF) + i)
    end
    return nil
  end,
  __len = function(t) return rawget_(t, LEN) end,
  __newindex = function() error_("candle and indicator arrays are read-only", 2) end,
  __pairs = function(t)
    local n = rawget_(t, LEN)
    return function(_, i) i = i + 1 if i <= n then return i, t[i] end end, t, 0
  end,
  __metatable = "read-only array",
}
-- The host hands out arrays as one integer: (id << 17) | length, so `#x` needs no call to the host.
local function view(code) return setmetatable_({[ID] = code >> 17, [LEN] = code & 131071, [OFF] = 0, [NANP] = 0}, view_mt) end
-- A backtest's indicator: a view with an offset into the whole-history result, and its NaN lead.
local function series_view(code, lead)
  local len = code & 131071
  return setmetatable_({[ID] = (code >> 38) & 16777215, [OFF] = (code >> 17) & 2097151, [LEN] = len,
                        [NANP] = lead < len and lead or len}, view_mt)
end
-- ...and takes them back as TAG | id << 38 | offset << 17 | length (see ta.py).
local TAG = 1 << 62
local function id_of(x)
  if type_(x) == "table" then
    local id = rawget_(x, ID)
    if id then return TAG | (id << 38) | (rawget_(x, OFF) << 17) | rawget_(x, LEN) end
    return x  -- a plain Lua table: the host copies it
  end
  return x
end

local S = {}
for k, v in pairs(string) do S[k] = v end
S.dump = nil
S.rep = function(s, n, sep)
  local len = #tostring_(s) * (n or 0) + (sep and #sep * math.max((n or 0) - 1, 0) or 0)
  if len > MAX_STRING then error_("string.rep result too large (" .. len .. " bytes, limit " .. MAX_STRING .. ")", 2) end
  return string_rep(s, n, sep)
end
for _, name in ipairs({"find", "match", "gmatch", "gsub"}) do
  local f = string[name]
  S[name] = function(s, p, ...)
    if type_(s) == "string" and #s > MAX_SUBJECT then error_("string." .. name .. ": subject longer than " .. MAX_SUBJECT, 2) end
    if type_(p) == "string" and #p > MAX_PATTERN then error_("string." .. name .. ": pattern longer than " .. MAX_PATTERN, 2) end
    return f(s, p, ...)
  end
end
getmetatable_("").__index = S   -- ("x"):rep(...) must meet the same caps

local T = {}
for k, v in pairs(table) do T[k] = v end
local M = {}
for k, v in pairs(math) do M[k] = v end
local U = {}
for k, v in pairs(utf8) do U[k] = v end

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

local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  select = select, tonumber = tonumber, tostring = tostring, type = type, xpcall = xpcall,
  rawequal = rawequal, rawlen = rawlen, rawget = rawget,
  string = S, table = T, math = M, utf8 = U, coroutine = C,
  os = {time = os.time, clock = os.clock, date = function(fmt, t) return os.date(fmt or "!%Y-%m-%dT%H:%M:%SZ", t) end},
  NaN = 0/0,
}
env.setmetatable = function(t, mt)
  if type_(mt) == "table" and rawget(mt, "__gc") ~= nil then error_("__gc metamethods are not allowed", 2) end
  return setmetatable_(t, mt)
end
env.getmetatable = function(x)
  if type_(x) == "string" then return nil end
  return getmetatable_(x)
end
env.print = function(...)
  local n = select_("#", ...)
  local parts = {}
  for i = 1, n do parts[i] = tostring_((select_(i, ...))) end
  host_print(table_concat(parts, "\t"))
end
env.isnan = function(x) return x ~= x end
env._G = env

-- ta: every function goes to the host (TA-Lib), arrays travel as ids, results come back as views.
local ta = {}
local function wrap_results(...)
  local n = select_("#", ...)
  if n == 2 then
    local r, lead = ...
    if type_(r) == "number" and r < 0 and ((-r) & TAG) ~= 0 then return series_view(-r, lead) end
  end
  if n == 1 then
    local r = ...
    if type_(r) == "number" and r < 0 then return view(-r) end
    return r
  end
  if n == 0 then return nil end
  local out = {}
  for i = 1, n do
    local r = select_(i, ...)
    out[i] = (type_(r) == "number" and r < 0) and view(-r) or r
  end
  return table.unpack(out, 1, n)
end
local table_unpack = table.unpack
for _, name in ipairs(ta_names) do
  -- one closure per function, made once: the common one- and two-argument calls avoid table packing
  ta[name] = function(a, b, ...)
    if select_("#", ...) == 0 then
      return wrap_results(host_ta(name, id_of(a), id_of(b)))
    end
    local rest = {...}
    for i = 1, #rest do rest[i] = id_of(rest[i]) end
    return wrap_results(host_ta(name, id_of(a), id_of(b), table_unpack(rest)))
  end
end
setmetatable_(ta, {
  __index = function(_, name) error_("ta." .. tostring_(name) .. " does not exist", 2) end,
  __newindex = function() error_("ta is read-only", 2) end,
})
env.ta = ta

local function compile(code)
  if type_(code) ~= "string" then return nil, "code must be text" end
  return load(code, "=strategy", "t", env)
end

-- Run f(...) in a fresh hooked coroutine with fresh budgets; returns ok, results... or false, message.
local function run(f, ...)
  used, exhausted = 0, false
  deadline = os_clock() + time_limit
  local co = guard(co_create(f))
  local r = table.pack(co_resume(co, ...))
  debug_sethook()  -- the host's own calls run without the hook
  if exhausted then return false, LIMIT_MARK .. exhausted end
  return table.unpack(r, 1, r.n)
end

local function candles(o, h, l, c, v, t) -- codes as for view()
  local views = {view(o), view(h), view(l), view(c), view(v), view(t)}
  local inner = {open = views[1], high = views[2], low = views[3], close = views[4], volume = views[5], time = views[6]}
  local tbl = setmetatable_({}, {__index = inner, __newindex = function() error_("the candle table is read-only", 2) end,
                                 __pairs = function() return next_, inner, nil end, __metatable = "read-only candles"})
  return tbl, views
end

-- A backtest: slide the candle views along the history and call decide on each candle, in Lua, so
-- the host is crossed only by the indicators. Returns the last candle done, ok, and the error.
local function series(f, c, views, params, first, last, lookback, out)
  for i = first, last do
    local off = i - lookback
    if off < 0 then off = 0 end
    for k = 1, 6 do local v = views[k] rawset_(v, OFF, off) rawset_(v, LEN, i - off) end
    local r = table.pack(run(f, c, params))
    if r[1] ~= true then return i, false, r[2] end
    out[i - first + 1] = r[2]  -- keys from 1: the array part keeps them in order
  end
  return last, true
end

return {compile = compile, run = run, env = env, candles = candles, series = series, mark = LIMIT_MARK}
