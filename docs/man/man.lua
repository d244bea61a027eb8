-- A pandoc filter that makes a man page out of one of docs/*.md (docs/man/page.sh
-- runs it; docs/man/README.md says why this shape).  Metadata it reads:
--   only     keep only the level-2 section with this title (docs/cli.md's
--            "flowscope record"), and
--   also     (a list) append these level-2 sections after it ("Exit status")
--   drop     (a list of prefixes) drop the level-2 sections whose title starts
--            with one ("flowscope " for flowscope(1): the commands have pages of their own)
--   shift    how many levels to raise the remaining headings (level 1 = .SH)
-- and turns what man cannot show well into what it can: tables into tagged
-- paragraphs (the first cell is the tag: an option, a status, a field) unless
-- they fit in 80 columns, links to
-- the other documents into their man page names.

local pages = {
  ['cli.md'] = 'flowscope(1)', ['config.md'] = 'flowscope.conf(5)',
  ['modules.md'] = 'flowscope-modules(7)', ['archive-format.md'] = 'flowscope-archive(5)',
  ['counters.md'] = 'flowscope-counters(7)',
}

local function cell_blocks(cell)
  -- pandoc 2.17: a cell is {attr, alignment, rowspan, colspan, blocks}
  return cell.contents or cell[5] or {}
end

local function cell_inlines(cell)
  local out = pandoc.List()
  for _, b in ipairs(cell_blocks(cell)) do
    if b.content then out:extend(b.content) end
  end
  return out
end

local function header_names(tbl)
  local names = {}
  local rows = tbl.head.rows or tbl.head[2] or {}
  if rows[1] then
    for i, c in ipairs(rows[1].cells or rows[1][2]) do
      names[i] = pandoc.utils.stringify(cell_blocks(c))
    end
  end
  return names
end

-- one row as a tagged paragraph: the tag is the first cell, followed by the
-- middle cells with their column names ("--qq-size SIZE (default: 512M)",
-- "magic (size: 4)"), the text is the last cell
local function row_item(names, row)
  local cells = row.cells or row[2]
  local term = cell_inlines(cells[1])
  local extra = pandoc.List()
  for i = 2, #cells - 1 do
    local inl = cell_inlines(cells[i])
    if #inl > 0 then
      if #extra > 0 then extra:extend({pandoc.Str(';'), pandoc.Space()}) end
      if names[i] and names[i] ~= '' then
        extra:extend({pandoc.Str(names[i] .. ':'), pandoc.Space()})
      end
      extra:extend(inl)
    end
  end
  if #extra > 0 then
    term:extend({pandoc.Space(), pandoc.Str('(')})
    term:extend(extra)
    term:insert(pandoc.Str(')'))
  end
  local body = pandoc.List()
  if #cells > 1 then body = pandoc.List(cell_blocks(cells[#cells])) end
  return {term, {body}}
end

-- a table whose rows fit a terminal's 80 columns stays one (tbl)
local function fits(tbl)
  local widths = {}
  local function measure(rows)
    for _, row in ipairs(rows) do
      for i, c in ipairs(row.cells or row[2]) do
        widths[i] = math.max(widths[i] or 0, utf8.len(pandoc.utils.stringify(cell_blocks(c))) or 99)
      end
    end
  end
  measure(tbl.head.rows or tbl.head[2] or {})
  for _, b in ipairs(tbl.bodies) do measure(b.body or b[4]) end
  local total = 0
  for _, w in ipairs(widths) do total = total + w + 3 end
  return total <= 72
end

function Table(tbl)
  if fits(tbl) then return nil end
  local names = header_names(tbl)
  local items = {}
  for _, b in ipairs(tbl.bodies) do
    for _, row in ipairs(b.body or b[4]) do
      items[#items + 1] = row_item(names, row)
    end
  end
  return pandoc.DefinitionList(items)
end

-- "\|" is how a table cell of docs/*.md writes "|", also inside code
function Code(c)
  c.text = c.text:gsub('\\|', '|')
  return c
end

function Link(l)
  local file = l.target:match('^([%w%-]+%.md)')
  if file and pages[file] then
    local out = pandoc.List(l.content)
    out:extend({pandoc.Space(), pandoc.Str('(' .. pages[file] .. ')')})
    return out
  elseif file then
    local out = pandoc.List(l.content)
    out:extend({pandoc.Space(), pandoc.Str('(docs/' .. file .. ')')})
    return out
  elseif l.target:match('^#') then
    return l.content
  end
end

local function meta_list(m)
  if not m then return {} end
  if type(m) == 'table' and m.t == nil and #m > 0 then
    local t = {}
    for i, v in ipairs(m) do t[i] = pandoc.utils.stringify(v) end
    return t
  end
  return {pandoc.utils.stringify(m)}
end

-- the level-2 sections of blocks: {title = ..., blocks = {...}}; before = what precedes the first
local function sections(blocks)
  local before, secs, cur = pandoc.List(), {}, nil
  for _, b in ipairs(blocks) do
    if b.t == 'Header' and b.level <= 2 then
      cur = {title = pandoc.utils.stringify(b), header = b, blocks = pandoc.List()}
      secs[#secs + 1] = cur
    elseif cur then
      cur.blocks:insert(b)
    else
      before:insert(b)
    end
  end
  return before, secs
end

local function select(doc)
  local before, secs = sections(doc.blocks)
  local only = doc.meta.only and pandoc.utils.stringify(doc.meta.only)
  local out = pandoc.List()
  if only then
    for _, s in ipairs(secs) do
      if s.title == only then out:extend(s.blocks) end
    end
    for _, name in ipairs(meta_list(doc.meta.also)) do
      for _, s in ipairs(secs) do
        if s.title == name then
          out:insert(pandoc.Header(3, s.title))
          out:extend(s.blocks)
        end
      end
    end
    return out
  end
  local drop = meta_list(doc.meta.drop)
  out:extend(before)
  for _, s in ipairs(secs) do
    local keep = true
    for _, p in ipairs(drop) do
      if s.title:sub(1, #p) == p then keep = false end
    end
    if keep then
      out:insert(s.header)
      out:extend(s.blocks)
    end
  end
  return out
end

local function meta_str(doc, key)
  return doc.meta[key] and pandoc.utils.stringify(doc.meta[key])
end

-- NAME (from the metadata), SYNOPSIS (a command's first code block),
-- DESCRIPTION (the document's title, or the chosen section), the rest with
-- headings raised, SEE ALSO (from the metadata)
function Pandoc(doc)
  local blocks = select(doc)
  local shift = tonumber(meta_str(doc, 'shift') or '0')
  local out = pandoc.List({pandoc.Header(1, 'NAME'), pandoc.Para(meta_str(doc, 'name'))})
  if doc.meta.only and blocks[1] and blocks[1].t == 'CodeBlock' then
    -- a command's section opens with its synopsis
    out:extend({pandoc.Header(1, 'SYNOPSIS'), blocks:remove(1)})
  end
  if doc.meta.only or not (blocks[1] and blocks[1].t == 'Header' and blocks[1].level == 1) then
    out:insert(pandoc.Header(1, 'DESCRIPTION'))
  end
  for i, b in ipairs(blocks) do
    if b.t == 'Header' then
      local level = math.max(1, b.level - shift)
      if i == 1 and b.level == 1 then
        b = pandoc.Header(1, 'DESCRIPTION')
      elseif level == 1 then
        b = pandoc.Header(1, pandoc.text.upper(pandoc.utils.stringify(b)))
      else
        b = pandoc.Header(2, b.content)
      end
    end
    out:insert(b)
  end
  if meta_str(doc, 'see-also') then
    out:insert(pandoc.Header(1, 'SEE ALSO'))
    out:insert(pandoc.Para(meta_str(doc, 'see-also')))
  end
  return pandoc.Pandoc(out, doc.meta)
end

return {{Code = Code, Table = Table, Link = Link}, {Pandoc = Pandoc}}
