-- Health of a digital-channels-operator resource from what the operator writes: the kstatus
-- conditions Reconciling and Stalled beside Ready, Suspended, and status.observedGeneration.
-- The same script serves DigitalChannelsTenant and DigitalChannelsEnvironment.
local hs = {}

local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function is_true(c)
  return c ~= nil and c.status == "True"
end

-- The condition's message, else its reason, else the fallback.
local function says(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local suspended = condition("Suspended")
if is_true(suspended) then
  hs.status = "Suspended"
  hs.message = says(suspended, "spec.suspend is true")
  return hs
end

-- Conditions of an older generation say nothing about the current spec.
local generation = obj.metadata.generation
local observed = nil
if obj.status ~= nil then
  observed = obj.status.observedGeneration
end
if observed == nil or (generation ~= nil and observed ~= generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on the current spec"
  return hs
end

local stalled = condition("Stalled")
if is_true(stalled) then
  hs.status = "Degraded"
  hs.message = says(stalled, "Stalled")
  return hs
end

local reconciling = condition("Reconciling")
if is_true(reconciling) then
  hs.status = "Progressing"
  hs.message = says(reconciling, "Reconciling")
  return hs
end

local ready = condition("Ready")
if is_true(ready) then
  hs.status = "Healthy"
  hs.message = says(ready, "Ready")
  return hs
end

-- Ready not True, and neither Reconciling nor Stalled (an operator older than them): in
-- progress, as kstatus reads it.
hs.status = "Progressing"
hs.message = says(ready, "Waiting for the operator")
return hs
