package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// chart draws grouped bars of end-to-end MiB/s per format and pipeline.
func chart(path string, rs []result) error {
	const w, h, top, bottom, left = 900, 420, 50, 90, 60
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	colors := []color.RGBA{{0x4c, 0x72, 0xb0, 255}, {0x55, 0xa8, 0x68, 255}, {0xc4, 0x4e, 0x52, 255}}
	maxV := 0.0
	for _, r := range rs {
		if v := r.mibps(); v > maxV {
			maxV = v
		}
	}
	maxV *= 1.15
	text := func(x, y int, s string) {
		d := &font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	text(left, 25, "adapter vs rsyslog: throughput in MiB/s (higher is better)")
	plotH := h - top - bottom
	// axis
	draw.Draw(img, image.Rect(left, top, left+1, top+plotH), image.NewUniform(color.Black), image.Point{}, draw.Src)
	draw.Draw(img, image.Rect(left, top+plotH, w-20, top+plotH+1), image.NewUniform(color.Black), image.Point{}, draw.Src)
	for i := 0; i <= 4; i++ {
		v := maxV * float64(i) / 4
		y := top + plotH - int(float64(plotH)*float64(i)/4)
		text(5, y+4, fmt.Sprintf("%.0f", v))
	}
	groups := len(rs) / 3
	gw := (w - left - 40) / groups
	bw := gw / 4
	for g := 0; g < groups; g++ {
		x0 := left + 20 + g*gw
		for k := 0; k < 3; k++ {
			r := rs[g*3+k]
			bh := int(float64(plotH) * r.mibps() / maxV)
			x := x0 + k*bw
			draw.Draw(img, image.Rect(x, top+plotH-bh, x+bw-6, top+plotH), image.NewUniform(colors[k]), image.Point{}, draw.Src)
			text(x, top+plotH-bh-4, fmt.Sprintf("%.0f", r.mibps()))
		}
		text(x0+bw/2, top+plotH+18, rs[g*3].format+" lines")
	}
	for k := 0; k < 3 && k < len(rs); k++ {
		y := h - 55 + k*16
		draw.Draw(img, image.Rect(left, y-10, left+12, y), image.NewUniform(colors[k]), image.Point{}, draw.Src)
		text(left+18, y, rs[k].name)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return png.Encode(f, img)
}
