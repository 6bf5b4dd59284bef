import { formatAge, formatBytes, formatSlots, linkClass, parseEnv } from "./format";

describe("format", () => {
  it("formats bytes", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(1073741824)).toBe("1.0 GiB");
    expect(formatBytes("4294967296")).toBe("4.0 GiB");
    expect(formatBytes(null)).toBe("—");
  });
  it("formats ages", () => {
    const now = Date.parse("2025-01-01T12:00:00Z");
    expect(formatAge("2025-01-01T11:59:30Z", now)).toBe("30s");
    expect(formatAge("2025-01-01T10:30:00Z", now)).toBe("1h 30m");
    expect(formatAge(null, now)).toBe("—");
  });
  it("summarises slots", () => {
    expect(formatSlots({ cpu: "2", mem: "1073741824", "cuda.shares": "0.25" })).toBe("2 CPU · 1.0 GiB · 0.25 GPU share");
    expect(formatSlots({ cpu: "1", mem: "536870912", "cuda.device": "2" })).toBe("1 CPU · 512 MiB · 2 GPU");
  });
  it("classifies topo -m cells", () => {
    expect(linkClass("NV12")).toBe("nv");
    expect(linkClass(" X ")).toBe("self");
    expect(linkClass("PXB")).toBe("pxb");
    expect(linkClass("SYS")).toBe("sys");
    expect(linkClass("NODE")).toBe("node");
    expect(linkClass("???")).toBe("other");
  });
  it("parses env lines", () => {
    expect(parseEnv("A=1\n\n# note\nB = two=2\n")).toEqual({ A: "1", B: " two=2" });
    expect(() => parseEnv("nope")).toThrow(/KEY=VALUE/);
  });
});
